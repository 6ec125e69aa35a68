"""Task functions: what ``@app.task`` returns, with argument schemas and submit options.

A task's arguments travel as JSON, never pickle. They are validated against the function's
type hints *when the task is submitted*, so a bad call fails in the caller and not hours
later in a worker. The same pydantic model gives the JSON Schema the HTTP API publishes.

Submit options (``name``, ``priority``, ``queue``, ``delay``, ``run_at``, ``max_attempts``,
``timeout``) are keyword arguments of `TaskFunction.submit` and win over a task function's
own parameters of the same name; such parameters are passed in one dict with
`TaskFunction.submit_args` / `TaskFunction.prepare_args` instead, which also take the options
as one `SubmitOptions` (see `taskward.options`). ``connection`` is not an option of the task
but of the one insert: it is a keyword of ``submit`` only.

The argument model, its validation and the JSON of arguments and results are
`taskward.arguments` (`TaskArguments`, a base of `TaskFunction`): strict JSON, no NaN, and
secrets stored with their real value. Where they are shown, `taskward.redact` hides them
(`TaskFunction.secrets` says where they are).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, Unpack

from taskward._fast import record_factory
from taskward.arguments import TaskArguments, format_validation_error
from taskward.errors import ConfigurationError, InvalidArgumentsError
from taskward.models import new_task_id
from taskward.options import (
    NO_OPTIONS,
    SubmitKeywords,
    SubmitOptions,
    as_options,
    check_defaults,
    check_label,
    submit_options,
)
from taskward.retry import Backoff
from taskward.stores.base import NewTask

if TYPE_CHECKING:
    from taskward.app import App
    from taskward.models import TaskInfo

__all__ = ["EXECUTORS", "TaskFunction", "check_executor", "format_validation_error"]

#: Where a worker runs a task function: ``"thread"`` (a plain function in a thread of the
#: worker), ``"loop"`` (an async function on the worker's event loop), ``"process"`` (either
#: kind in a child process of the worker's pool: `taskward.children`). None picks the first
#: two by the kind of function.
EXECUTORS = ("thread", "loop", "process")

P = ParamSpec("P")
R = TypeVar("R")

_make_new_task = record_factory(NewTask)  # NewTask(...), cheaper (taskward._fast)


class TaskFunction(TaskArguments, Generic[P, R]):
    """A function registered with ``@app.task``. Calling it runs the function directly."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        app: App,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 3,
        timeout: float | None = None,
        retry: Backoff | None = None,
        executor: str | None = None,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"@app.task needs a function, got {fn!r}")
        # The default name is the function's own (short to type in the CLI and the API);
        # two functions of one name in one app are refused at registration: give name=.
        qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
        if name is None:
            if qualname is None:
                raise ConfigurationError(f"give a name= for the task function {fn!r}")
            name = qualname
        retry = Backoff() if retry is None else retry
        if not isinstance(retry, Backoff):
            raise ConfigurationError(f"retry must be a Backoff, got {retry!r}")
        try:
            check_label("name", name)
            check_defaults(
                queue=queue, priority=priority, max_attempts=max_attempts, timeout=timeout
            )
        except InvalidArgumentsError as exc:
            raise ConfigurationError(f"task {name!r}: {exc}") from None
        # First, so that attributes of ``fn`` copied onto this object cannot shadow ours.
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.app = app
        self.name: str = name
        self.queue = queue
        self.priority = priority
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._checked_defaults = (queue, priority, max_attempts, timeout)
        self.retry = retry
        self.is_async = inspect.iscoroutinefunction(fn)
        self.executor = check_executor(name, fn, executor)
        #: Whether the worker runs it in a child process (read on every run).
        self.in_child = self.executor == "process"
        self._init_arguments(fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as if it were not a task."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<TaskFunction {self.name!r} queue={self.queue!r}>"

    # -- submitting ---------------------------------------------------------------------
    #
    # Every way in builds one SubmitOptions (NO_OPTIONS when none is given: no object is
    # made on the common path) and hands it to `_new_task`, the one place that fills a
    # NewTask from the options and the decorator's own.

    def prepare_args(
        self,
        args: Mapping[str, Any] | None = None,
        options: SubmitOptions | None = None,
        **keywords: Unpack[SubmitKeywords],
    ) -> NewTask:
        """A `NewTask` from arguments given as one dict, and options as one `SubmitOptions`
        or as keywords (not both); options left out are the decorator's."""
        text = self._to_json({} if args is None else args)
        return self._new_task(text, as_options(options, keywords))

    def prepare_call(
        self, options: SubmitOptions, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> NewTask:
        """A `NewTask` from a call's positional and keyword arguments (as `bind`) and
        ``options`` (what ``App.submit`` and ``app.sync.submit`` do)."""
        return self._new_task(self._to_json(self._bind(args, kwargs)), options)

    def prepare(
        self,
        *args: Any,
        name: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> NewTask:
        """A `NewTask` from a call's arguments (as `bind`) and submit options."""
        options = submit_options(
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        return self._new_task(self._to_json(self._bind(args, kwargs)), options)

    def _new_task(self, args_text: str, options: SubmitOptions) -> NewTask:
        defaults = (self.queue, self.priority, self.max_attempts, self.timeout)
        queue, priority, max_attempts, timeout = defaults
        if options is NO_OPTIONS:
            name = delay = run_at = None
        else:
            name = options.name
            delay = None if options.delay is None else float(options.delay)
            run_at = None if options.run_at is None else options.run_at.timestamp()
            if options.queue is not None:
                queue = options.queue
            if options.priority is not None:
                priority = options.priority
            if options.max_attempts is not None:
                max_attempts = options.max_attempts
            if options.timeout is not None:
                timeout = options.timeout
        if defaults != self._checked_defaults:
            # The decorator's options were changed since it checked them: check the ones
            # this task takes (the submit's own are checked already).
            check_defaults(
                queue=queue, priority=priority, max_attempts=max_attempts, timeout=timeout
            )
        return _make_new_task(
            id=new_task_id(),
            task=self.name,
            args=args_text,
            name=name,
            priority=priority,
            queue=queue,
            max_attempts=max_attempts,
            timeout=None if timeout is None else float(timeout),
            delay=delay,
            run_at=run_at,
        )

    async def submit(
        self,
        *args: Any,
        name: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        connection: Any = None,
        **kwargs: Any,
    ) -> TaskInfo:
        """Validate and store one task; return it as Pending.

        ``connection``: with PostgreSQL, the caller's asyncpg connection inside its own
        transaction; the task exists (and runs) only if that transaction commits.
        """
        options = submit_options(
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        new = self._new_task(self._to_json(self._bind(args, kwargs)), options)
        return await self.app._submit_one(new, connection)

    async def submit_args(
        self,
        args: Mapping[str, Any] | None = None,
        options: SubmitOptions | None = None,
        **keywords: Unpack[SubmitKeywords],
    ) -> TaskInfo:
        """`submit` with the arguments as one dict (for parameters named like an option)."""
        return await self.app._submit_one(self.prepare_args(args, options, **keywords))

    def submit_sync(
        self,
        *args: Any,
        name: str | None = None,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> TaskInfo:
        """`submit` for code without an event loop (Flask, Django, scripts)."""
        options = submit_options(
            name=name,
            priority=priority,
            queue=queue,
            delay=delay,
            run_at=run_at,
            max_attempts=max_attempts,
            timeout=timeout,
        )
        return self.app.sync.submit_many([self.prepare_call(options, args, kwargs)])[0]


def check_executor(name: str, fn: Callable[..., Any], executor: str | None) -> str:
    """The executor of task ``name``: ``executor`` checked against ``fn``, or the default
    for its kind; ConfigurationError naming what is wrong."""
    is_async = inspect.iscoroutinefunction(fn)
    if executor is None:
        return "loop" if is_async else "thread"
    if executor not in EXECUTORS:
        raise ConfigurationError(
            f"task {name!r}: executor must be one of {', '.join(map(repr, EXECUTORS))}, "
            f"not {executor!r}"
        )
    if executor == "loop" and not is_async:
        raise ConfigurationError(f"task {name!r}: executor='loop' needs an async def function")
    if executor == "thread" and is_async:
        raise ConfigurationError(f"task {name!r}: executor='thread' needs a plain def function")
    if executor == "process":
        # The child process imports the function by its module and qualified name: it must
        # be reachable that way (not nested in another function, not a lambda or partial).
        module = getattr(fn, "__module__", None)
        qualname = getattr(fn, "__qualname__", None)
        if not isinstance(module, str) or not isinstance(qualname, str):
            raise ConfigurationError(
                f"task {name!r}: executor='process' needs a function defined in a module, "
                f"not {fn!r}"
            )
        if "<" in qualname:  # <locals>, <lambda>
            raise ConfigurationError(
                f"task {name!r}: executor='process' needs a function defined at the top level "
                f"of a module (a child process imports it as {module}.{qualname}, which it "
                "cannot)"
            )
    return executor
