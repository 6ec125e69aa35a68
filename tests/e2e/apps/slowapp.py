"""An app module that is slow to import, so that a test can interrupt a command meanwhile."""

from __future__ import annotations

import sys
import time

from taskward.app import App

sys.stderr.write("slowapp: importing\n")
sys.stderr.flush()
time.sleep(30)

app = App()
