-- The PostgreSQL store's statements for durable schedules (see 0002_schedules.sql and
-- 0005_schedule_last_fired.sql), one per "-- name:" header, loaded by
-- taskward.stores.postgres.statements and declared as in queries.sql. $1 is the fake clock,
-- as elsewhere.

-- name: schedule_insert
-- prepared
INSERT INTO taskward_schedules (name, definition, last_tick, paused, updated_at)
VALUES ($2, $3, NULL, false, taskward_now($1))
RETURNING name, definition, last_tick, last_fired, paused, updated_at;

-- name: schedule_replace
-- prepared
INSERT INTO taskward_schedules (name, definition, last_tick, paused, updated_at)
VALUES ($2, $3, NULL, false, taskward_now($1))
ON CONFLICT (name) DO UPDATE
SET definition = excluded.definition, updated_at = excluded.updated_at
RETURNING name, definition, last_tick, last_fired, paused, updated_at;

-- name: schedule_get
-- retry: read
-- prepared
SELECT name, definition, last_tick, last_fired, paused, updated_at FROM taskward_schedules WHERE name = $1;

-- name: schedule_list
-- retry: read
-- prepared
SELECT name, definition, last_tick, last_fired, paused, updated_at FROM taskward_schedules
ORDER BY name COLLATE "C";

-- name: schedule_delete
DELETE FROM taskward_schedules WHERE name = $1;

-- name: schedule_pause
-- prepared
-- Resuming a paused schedule forgets its last tick: the ticks missed meanwhile never fire.
UPDATE taskward_schedules
SET last_tick = CASE WHEN $2 THEN last_tick END, paused = $2, updated_at = taskward_now($1)
WHERE name = $3 AND paused <> $2
RETURNING name, definition, last_tick, last_fired, paused, updated_at;

-- name: schedule_fire
-- The compare-and-set that makes each tick fire once. A NULL fired tick ($5: nothing
-- submitted) leaves last_fired as it was.
UPDATE taskward_schedules
SET last_tick = $2, last_fired = coalesce($5::double precision, last_fired),
    updated_at = taskward_now($1)
WHERE name = $3 AND NOT paused AND last_tick IS NOT DISTINCT FROM $4::double precision;

-- name: count_active
-- retry: read
-- prepared
SELECT count(*) FROM taskward_tasks
WHERE status IN ('Pending', 'Running') AND starts_with(name, $1);
