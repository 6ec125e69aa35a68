"""The app the latency benchmark's worker subprocess serves (the same no-op task)."""

from __future__ import annotations

import os

from throughput import make_app

app = make_app(os.environ["TASKWARD_DB"])
