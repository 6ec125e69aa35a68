-- taskward PostgreSQL schema, version 5: a schedule's last fired tick.
--
-- last_fired is the newest tick that submitted a task: what users are shown as a schedule's
-- last tick. last_tick stays the firing's cursor, which also moves past ticks that fired
-- nothing (a schedule's first round, a tick skipped for max_instances). Rows of an older
-- schema start with NULL: not known.
ALTER TABLE taskward_schedules ADD COLUMN last_fired double precision;
