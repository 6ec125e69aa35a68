"""Request and response bodies of the HTTP API, as pydantic models (and so as OpenAPI).

Submit bodies are strict: a wrong type is refused, never coerced (``"priority": "1"`` is a
422, not a 1), unknown fields are refused, and numbers are range-checked here so the schema
a client reads says exactly what the server accepts. Responses are written by
`TaskInfo.to_json` directly (fast); `TaskOut` documents that shape, and a test holds the two
together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from taskward.models import Status
from taskward.options import (
    MAX_DELAY,
    MAX_INT32,
    MAX_NAME_LENGTH,
    MAX_PRIORITY,
    MAX_RUN_AT_YEAR,
    MIN_PRIORITY,
    MIN_RUN_AT_YEAR,
    SubmitOptions,
    submit_options,
)
from taskward.scheduler import MAX_CRON_LENGTH, MAX_SCHEDULE_NAME, MIN_EVERY

__all__ = [
    "MAX_BATCH",
    "MAX_DELAY",
    "ErrorBody",
    "FieldError",
    "HealthOut",
    "ProgressOut",
    "ScheduleOut",
    "ScheduleRequest",
    "StatsOut",
    "SubmitRequest",
    "SubmitResponse",
    "TaskOut",
    "TaskPage",
    "TaskTypeOut",
    "ValidationErrorBody",
    "WorkerOut",
]

#: Most tasks in one batch submit (the 1 MiB body limit usually comes first).
MAX_BATCH = 1000
#: How the API describes the arguments it shows.
SECRET_ARGS = (
    "The arguments; secret ones (typed SecretStr or Secret[...], or named like a redaction"
    ' name of TASKWARD_REDACT) show as "***".'
)


class SubmitRequest(BaseModel):
    """One task to submit. Every field but ``task`` (when there is a default task) is optional."""

    model_config = ConfigDict(extra="forbid", strict=True, title="SubmitRequest")

    task: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="A registered task function (see GET /api/task-types); "
        "leave out for the app's default task.",
    )
    name: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="A label, unique among active (Pending, Running) tasks.",
    )
    args: dict[str, Any] | None = Field(
        None, description="The task function's arguments, by name (its JSON Schema)."
    )
    priority: int | None = Field(
        None, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="Lower runs first; default 0."
    )
    queue: str | None = Field(None, min_length=1, max_length=MAX_NAME_LENGTH)
    delay: float | None = Field(
        None, ge=0, le=MAX_DELAY, allow_inf_nan=False, description="Seconds before it may run."
    )
    run_at: AwareDatetime | None = Field(
        None,
        description="When it may run (with a timezone; years 1900 to 9000); instead of delay.",
    )
    max_attempts: int | None = Field(None, ge=1, le=MAX_INT32)
    timeout: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Seconds one attempt may take."
    )

    @field_validator("run_at")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            year = value.astimezone(UTC).year
        except OverflowError:
            year = 0
        if not MIN_RUN_AT_YEAR <= year < MAX_RUN_AT_YEAR:
            raise ValueError(
                f"run_at must be between the years {MIN_RUN_AT_YEAR} and {MAX_RUN_AT_YEAR}"
            )
        return value

    def options(self) -> SubmitOptions:
        """The submit options of this request, checked (`InvalidArgumentsError` names one)."""
        return submit_options(
            name=self.name,
            priority=self.priority,
            queue=self.queue,
            delay=self.delay,
            run_at=self.run_at,
            max_attempts=self.max_attempts,
            timeout=self.timeout,
        )


class ScheduleRequest(BaseModel):
    """A durable schedule: submit ``task`` with ``args`` on every tick (``every`` or ``cron``)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ScheduleRequest")

    name: str = Field(
        min_length=1,
        max_length=MAX_SCHEDULE_NAME,
        # Documented here, checked by Schedule (whose message says which character and why).
        json_schema_extra={"pattern": r"^[^@/\\?#%\x00-\x1f\x7f]+$"},
        description="Unique among schedules; tick tasks are named <name>@<tick time>."
        " It is a segment of the schedule's URL, so it may not hold '@', '/', '\\', '?',"
        " '#', '%' or control characters.",
    )
    task: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    args: dict[str, Any] | None = Field(None, description="The task function's arguments.")
    every: float | None = Field(
        None,
        ge=MIN_EVERY,
        le=MAX_DELAY,
        allow_inf_nan=False,
        description="Seconds between ticks, aligned to the Unix epoch (or give cron).",
    )
    cron: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_CRON_LENGTH,
        description="A cron expression read on the wall clock of timezone, e.g. '0 3 * * *'.",
    )
    timezone: str = Field("UTC", min_length=1, max_length=100, description="An IANA zone.")
    catch_up: bool = Field(
        False, description="After downtime, run every missed tick (else only the newest)."
    )
    max_instances: int = Field(
        1, ge=1, le=MAX_INT32, description="Most ticks Pending or Running at once."
    )


class ScheduleOut(BaseModel):
    """A stored schedule, with its state: paused, the last tick that fired, the next one."""

    name: str
    task: str
    args: dict[str, Any] = Field(description=SECRET_ARGS)
    every: float | None
    cron: str | None
    timezone: str
    catch_up: bool
    max_instances: int
    paused: bool
    last_tick: datetime | None
    next_tick: datetime | None


class SubmitResponse(BaseModel):
    """The id of the task just submitted."""

    task_id: UUID


class ProgressOut(BaseModel):
    """What a running task last reported."""

    done: float
    total: float | None
    message: str | None


class TaskOut(BaseModel):
    """A task, as ``GET /api/tasks/{id}`` shows it."""

    id: UUID
    name: str | None
    task: str | None
    args: dict[str, Any] | None = Field(description=SECRET_ARGS)
    priority: int
    queue: str | None
    status: Status
    error: str | None
    traceback: str | None
    result: Any
    progress: ProgressOut | None
    attempts: int
    max_attempts: int
    created_at: datetime
    run_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class TaskPage(BaseModel):
    """A page of tasks, newest first; pass ``cursor`` back to get the next (null: last)."""

    items: list[TaskOut]
    cursor: str | None


class TaskTypeOut(BaseModel):
    """A task function, with the JSON Schema of its arguments."""

    name: str
    description: str | None
    queue: str
    priority: int
    max_attempts: int
    timeout: float | None
    default: bool
    args: dict[str, Any]


class WorkerOut(BaseModel):
    """A worker process alive now (it beat within its lease), with its slots."""

    id: str
    host: str | None
    pid: int | None
    queues: list[str] | None
    queue_limits: dict[str, int] | None = None
    concurrency: int | None
    running: int | None
    alive: bool
    started_at: str | None
    last_seen: str | None


class StatsOut(BaseModel):
    """Counts by status and queue, workers, and recent throughput."""

    by_status: dict[str, int]
    by_queue: dict[str, dict[str, int]]
    workers: list[WorkerOut]
    throughput: dict[str, float]


class HealthOut(BaseModel):
    """``ok``, or ``unavailable`` with the reason."""

    status: str
    reason: str | None = None


class ErrorBody(BaseModel):
    """Every error but 422: a sentence saying what went wrong."""

    detail: str


class FieldError(BaseModel):
    """One problem with a request: where (``["body", "priority"]``), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: each problem, naming its field."""

    detail: list[FieldError]
