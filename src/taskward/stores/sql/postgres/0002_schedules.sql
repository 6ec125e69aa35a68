-- taskward PostgreSQL schema, version 2: durable schedules.
--
-- One row per schedule: its definition (JSON text: task, args, every or cron, timezone,
-- catch_up, max_instances) and last_tick, the newest tick already handled (NULL: never
-- fired). Firing a tick compares-and-sets last_tick in the transaction that inserts the
-- tick's task, so each tick is inserted once however many processes try.
CREATE TABLE taskward_schedules (
    name       text             PRIMARY KEY,
    definition text             NOT NULL,
    last_tick  double precision,
    paused     boolean          NOT NULL DEFAULT false,
    updated_at double precision NOT NULL
);
