"""A worker process for the SQLite multi-process tests (run as a script, not collected).

Usage: ``python claimer.py DB_PATH NAME INSERTS``. It inserts ``INSERTS`` tasks one by one
while claiming and finishing tasks until none is left, then prints the claimed ids, one a line.
"""

from __future__ import annotations

import asyncio
import sys
from uuid import uuid4

from taskward.models import Status
from taskward.stores import NewTask
from taskward.stores.sqlite import SQLiteStore


async def main(path: str, name: str, inserts: int) -> None:
    """Claim (and insert) until there is nothing left to claim."""
    store = SQLiteStore(path)
    await store.open()
    claimed: list[str] = []
    try:
        empty = 0
        while empty < 3:
            if inserts:
                inserts -= 1
                await store.insert([NewTask(id=uuid4(), task=f"from-{name}")])
            batch = await store.claim(name, None, 1 + len(claimed) % 3, 60.0)
            empty = 0 if (batch or inserts) else empty + 1
            for row in batch:
                assert row.lease_token is not None
                if not await store.finish(row.id, row.lease_token, Status.COMPLETED):
                    raise SystemExit(f"lost the lease of {row.id}")
                claimed.append(str(row.id))
    finally:
        await store.close()
    sys.stdout.write("".join(f"{i}\n" for i in claimed))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
