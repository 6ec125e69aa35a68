"""Random sequences of submit / finish / cancel against a model of the manager.

Every status change is recorded through ``add_listener``; each consecutive pair of one task's
statuses must be in ``models.TRANSITIONS``, each task must end where the model says (priority
order, concurrency bound, backpressure and abandonment included), and the final counts must
add up. Each example runs in a fresh event loop in debug mode.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from taskward import Status, TaskInfo, TaskManager
from taskward.errors import DuplicateNameError, QueueFullError, UnknownTaskError
from taskward.models import FINISHED, TRANSITIONS

NAMES = [f"t{i}" for i in range(5)]
GRACE = 0.01  # what a task that ignores cancellation costs; the others end at once

Submit = tuple[Literal["submit"], int, int, bool]  # name, priority, ignores cancellation
Finish = tuple[Literal["finish"], int, bool]  # name, succeeds
Cancel = tuple[Literal["cancel"], int]
Op = Submit | Finish | Cancel

ops_strategy = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"),
            st.integers(0, len(NAMES) - 1),
            st.integers(-1, 2),
            st.sampled_from([False, False, False, False, True]),
        ),
        st.tuples(st.just("finish"), st.integers(0, len(NAMES) - 1), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, len(NAMES) - 1)),
    ),
    max_size=30,
)


class Job:
    """A task body that ends when the test resolves its outcome; a stubborn one ignores
    cancellation (and so is abandoned after the grace) until then."""

    def __init__(self, stubborn: bool) -> None:
        self.stubborn = stubborn
        self.outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.started = False
        self.ended = asyncio.Event()

    async def run(self) -> None:
        self.started = True
        try:
            try:
                return await asyncio.shield(self.outcome)
            except asyncio.CancelledError:
                if not self.stubborn:
                    raise
                return await self.outcome
        finally:
            self.ended.set()

    def resolve(self, ok: bool) -> None:
        if self.outcome.done():
            return
        if ok:
            self.outcome.set_result(None)
        else:
            self.outcome.set_exception(RuntimeError("failed on purpose"))
            self.outcome.exception()  # seen here: a never-started job must not log it


@dataclasses.dataclass
class Modelled:
    status: Status
    priority: int
    seq: int
    job: Job
    resolved: bool | None = None  # None: not yet; True: will complete; False: will fail


class Model:
    """What the manager should look like after each step, once it has settled."""

    def __init__(self, concurrency: int | None, max_pending: int | None) -> None:
        self.concurrency = concurrency
        self.max_pending = max_pending
        self.tasks: dict[str, Modelled] = {}
        self.seq = 0

    def count(self, status: Status) -> int:
        return sum(1 for t in self.tasks.values() if t.status is status)

    def full(self) -> bool:
        if self.concurrency is None or self.max_pending is None:
            return False
        waiting = self.count(Status.PENDING)
        return waiting + self.count(Status.RUNNING) >= self.concurrency + self.max_pending

    def submit(self, name: str, priority: int, job: Job) -> None:
        self.seq += 1
        self.tasks[name] = Modelled(Status.PENDING, priority, self.seq, job)
        self.schedule()

    def resolve(self, name: str, ok: bool) -> None:
        task = self.tasks[name]
        task.resolved = ok
        if task.status is Status.RUNNING:
            task.status = Status.COMPLETED if ok else Status.FAILED
        self.schedule()

    def cancel(self, name: str) -> None:
        task = self.tasks[name]
        if task.status not in FINISHED:
            task.status = Status.CANCELLED
        self.schedule()

    def schedule(self) -> None:
        """Start waiting tasks, best (lowest priority number, then oldest) first, while a
        slot is free; a task whose outcome is already known finishes as soon as it starts."""
        while True:
            running = self.count(Status.RUNNING)
            if self.concurrency is not None and running >= self.concurrency:
                return
            waiting = [t for t in self.tasks.values() if t.status is Status.PENDING]
            if not waiting:
                return
            best = min(waiting, key=lambda t: (t.priority, t.seq))
            if best.resolved is None:
                best.status = Status.RUNNING
            else:
                best.status = Status.COMPLETED if best.resolved else Status.FAILED

    def statuses(self) -> dict[str, Status]:
        return {name: t.status for name, t in self.tasks.items()}


async def scenario(concurrency: int | None, max_pending: int | None, ops: list[Op]) -> None:
    asyncio.get_running_loop().set_debug(True)
    tm = TaskManager(concurrency=concurrency, max_pending=max_pending, grace=1.0)
    model = Model(concurrency, max_pending)
    histories: dict[str, list[list[Status]]] = {}
    peak_running = 0
    changed = asyncio.Event()
    jobs: list[Job] = []

    def listen(info: TaskInfo) -> None:
        nonlocal peak_running
        assert info.name is not None
        histories[info.name][-1].append(info.status)
        peak_running = max(peak_running, tm.running_count())
        changed.set()

    tm.add_listener(listen)

    def actual() -> dict[str, Status]:
        return {name: info.status for name in model.tasks if (info := tm.status(name))}

    async def settle() -> None:
        try:
            async with asyncio.timeout(1):
                while actual() != model.statuses():
                    changed.clear()
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(f"manager: {actual()}, model: {model.statuses()}") from None

    for op in ops:
        name = NAMES[op[1]]
        if op[0] == "submit":
            _, _, priority, stubborn = op
            job = Job(stubborn)
            known = model.tasks.get(name)
            if known is not None and known.status not in FINISHED:
                try:
                    tm.submit_nowait(name, job.run, priority=priority)
                except DuplicateNameError:
                    continue
                raise AssertionError(f"{name} is {known.status}: a duplicate was accepted")
            if model.full():
                try:
                    tm.submit_nowait(name, job.run, priority=priority)
                except QueueFullError:
                    continue
                raise AssertionError("the queue is full but a task was accepted")
            histories.setdefault(name, []).append([])
            jobs.append(job)
            tm.submit_nowait(name, job.run, priority=priority)
            model.submit(name, priority, job)
        elif op[0] == "finish":
            if name in model.tasks:
                task = model.tasks[name]
                if task.status not in FINISHED and task.resolved is None:
                    task.job.resolve(op[2])
                    model.resolve(name, op[2])
        else:
            if name not in model.tasks:
                try:
                    await tm.cancel(name)
                except UnknownTaskError:
                    continue
                raise AssertionError("cancelling an unknown name did not raise")
            async with asyncio.timeout(2):
                info = await tm.cancel(name, grace=GRACE)
            model.cancel(name)
            assert info.status is model.tasks[name].status
        await settle()

    # Shut down: whatever is still active is cancelled (a stubborn one abandoned after the
    # grace); then let the abandoned ones end, so that none outlives this event loop.
    async with asyncio.timeout(2):
        await tm.shutdown(grace=GRACE)
    for task in model.tasks.values():
        if task.status not in FINISHED:
            task.status = Status.CANCELLED
    for job in jobs:
        if job.started:
            job.resolve(True)
            async with asyncio.timeout(1):
                await job.ended.wait()

    assert actual() == model.statuses()
    assert tm.count() == len(model.tasks)
    assert (tm.running_count(), tm.pending_count()) == (0, 0)
    assert sum(len(tm.names(status)) for status in Status) == tm.count()
    for status in Status:
        assert len(tm.names(status)) == model.count(status)
    if concurrency is not None:
        assert peak_running <= concurrency
    for name, runs in histories.items():
        for history in runs:
            assert history[0] is Status.PENDING
            assert history[-1] in FINISHED
            for old, new in itertools.pairwise(history):
                assert new in TRANSITIONS[old], f"{name}: {old} -> {new} in {history}"
        assert runs[-1][-1] is model.tasks[name].status


@settings(max_examples=100, deadline=None)
@given(
    concurrency=st.sampled_from([None, 1, 2, 3]),
    max_pending=st.sampled_from([None, None, 0, 1, 2]),
    ops=ops_strategy,
)
def test_random_submit_cancel_finish_sequences_follow_the_model(
    concurrency: int | None, max_pending: int | None, ops: list[Any]
) -> None:
    asyncio.run(scenario(concurrency, max_pending, ops))
