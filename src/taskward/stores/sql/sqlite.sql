-- The SQLite store's statements, one per "-- name:" header, loaded by taskward.stores.sqlite.
-- Values are always bound parameters. A "{}" is filled with "?, ?, ..." by the store, for
-- lists of ids or queues, and a "{where}" with "AND"-joined fixed conditions.
-- Every "SELECT *" and "RETURNING *" reads the columns in the table's order (see _record).

-- name: schema
-- Version 1. Statements are separated by ";" and run in one transaction on first open.
CREATE TABLE tasks (
    -- Insertion order. No AUTOINCREMENT: it would cost a page write per insert, and a seq
    -- is only reused if the newest tasks were all pruned, which breaks no ordering.
    seq              INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    task             TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    name             TEXT,
    priority         INTEGER NOT NULL,
    queue            TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    timeout          REAL,
    run_at           REAL    NOT NULL,
    created_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    lease_token      TEXT,
    lease_expires_at REAL,
    worker_id        TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result           TEXT,
    error            TEXT,
    traceback        TEXT,
    progress         TEXT
);
-- A name is held only while its task is active: this index enforces exactly that.
CREATE UNIQUE INDEX tasks_active_name ON tasks (name)
    WHERE name IS NOT NULL AND status IN ('Pending', 'Running');
CREATE INDEX tasks_name ON tasks (name, seq) WHERE name IS NOT NULL;
-- The one claim index: each queue's best due task is the first entry of its range.
CREATE INDEX tasks_claim ON tasks (queue, priority, run_at, seq)
    WHERE status = 'Pending' AND cancel_requested = 0;
CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status = 'Running';
CREATE INDEX tasks_finished ON tasks (status, finished_at) WHERE finished_at IS NOT NULL;
-- Worker processes that said they are alive; a row is kept while its beat has not expired.
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    info       TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_seen  REAL NOT NULL,
    expires_at REAL NOT NULL
);

-- name: schema_2
-- Version 2: durable schedules. Run after "schema" on a new file, or alone on a version 1 one.
-- definition is JSON (task, args, every or cron, ...); last_tick the newest tick handled.
CREATE TABLE schedules (
    name       TEXT    PRIMARY KEY,
    definition TEXT    NOT NULL,
    last_tick  REAL,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL    NOT NULL
);

-- name: schema_3
-- Version 3: leadership as a lease row. One row per role ("maintenance"): who holds it and
-- until when; a holder that stops renewing (stopped, stalled) loses it after one lease.
CREATE TABLE leaders (
    role       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
);

-- name: schema_4
-- Version 4: last_fired, the newest tick that submitted a task (what users are shown as a
-- schedule's last tick); last_tick stays the firing's cursor, which also moves past ticks
-- that fired nothing. A file migrated from version 3 or older starts with NULL (not known).
ALTER TABLE schedules ADD COLUMN last_fired REAL;

-- name: insert_one
INSERT INTO tasks (id, task, args, name, priority, queue, status, max_attempts, timeout,
                   run_at, created_at)
VALUES (?, ?, ?, ?, ?, ?, 'Pending', ?, ?, ?, ?);

-- name: insert_many
-- Bulk inserts give each row its seq, so the rows can be returned without reading them back.
INSERT INTO tasks (seq, id, task, args, name, priority, queue, status, max_attempts, timeout,
                   run_at, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, 'Pending', ?, ?, ?, ?);

-- name: last_seq
SELECT coalesce(max(seq), 0) FROM tasks;

-- name: active_names_in
-- Which of these names an active task held before this insert (rows with seq <= ?).
SELECT name FROM tasks
WHERE status IN ('Pending', 'Running') AND seq <= ? AND name IN ({});

-- name: pick_queue
-- The best due tasks of one queue: a range scan of tasks_claim.
SELECT seq FROM tasks INDEXED BY tasks_claim
WHERE status = 'Pending' AND cancel_requested = 0 AND queue = ? AND run_at <= ?
ORDER BY priority, run_at, seq LIMIT ?;

-- name: pick_queues
-- The best due tasks of several queues: the best of each queue's own range, merged.
WITH qs(q) AS (VALUES {})
SELECT t.seq FROM qs JOIN tasks AS t ON t.seq IN (
    SELECT s.seq FROM tasks AS s INDEXED BY tasks_claim
    WHERE s.status = 'Pending' AND s.cancel_requested = 0 AND s.queue = qs.q
      AND s.run_at <= ?
    ORDER BY s.priority, s.run_at, s.seq LIMIT ?
)
ORDER BY t.priority, t.run_at, t.seq LIMIT ?;

-- name: pick_all
-- Every queue: first list the queues that have Pending tasks by skipping through
-- tasks_claim (one seek per queue), then as pick_queues.
WITH RECURSIVE qs(q) AS (
    SELECT min(queue) FROM tasks INDEXED BY tasks_claim
    WHERE status = 'Pending' AND cancel_requested = 0
    UNION ALL
    SELECT (
        SELECT min(queue) FROM tasks INDEXED BY tasks_claim
        WHERE status = 'Pending' AND cancel_requested = 0 AND queue > qs.q
    ) FROM qs WHERE qs.q IS NOT NULL
)
SELECT t.seq FROM qs JOIN tasks AS t ON t.seq IN (
    SELECT s.seq FROM tasks AS s INDEXED BY tasks_claim
    WHERE s.status = 'Pending' AND s.cancel_requested = 0 AND s.queue = qs.q
      AND s.run_at <= ?
    ORDER BY s.priority, s.run_at, s.seq LIMIT ?
)
ORDER BY t.priority, t.run_at, t.seq LIMIT ?;

-- name: claim
-- The placeholder takes one of the pick statements. Each claimed row gets its own random
-- lease token.
UPDATE tasks
SET status = 'Running', attempts = attempts + 1, started_at = ?, worker_id = ?,
    lease_token = lower(hex(randomblob(16))), lease_expires_at = ?
WHERE seq IN ({})
RETURNING *;

-- name: heartbeat
UPDATE tasks SET lease_expires_at = ?
WHERE id = ? AND status = 'Running' AND lease_token = ?;

-- name: finish
UPDATE tasks
SET status = ?, result = ?, error = ?, traceback = ?, finished_at = ?,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = ? AND status = 'Running' AND lease_token = ?;

-- name: requeue
-- Without a new error the previous one (and its traceback) stays, as in a graceful release.
UPDATE tasks
SET status = 'Pending', run_at = :run_at,
    attempts = CASE WHEN :refund THEN max(attempts - 1, 0) ELSE attempts END,
    error = CASE WHEN :error IS NULL THEN error ELSE :error END,
    traceback = CASE WHEN :error IS NULL THEN traceback ELSE :traceback END,
    lease_token = NULL, lease_expires_at = NULL, cancel_requested = 0
WHERE id = :id AND status = 'Running' AND lease_token = :token;

-- name: set_progress
UPDATE tasks SET progress = ?
WHERE id = ? AND status = 'Running' AND lease_token = ?;

-- name: request_cancel
-- SET expressions see the old row, so one statement handles both active statuses.
UPDATE tasks
SET status = CASE status WHEN 'Pending' THEN 'Cancelled' ELSE status END,
    finished_at = CASE status WHEN 'Pending' THEN ? ELSE finished_at END,
    cancel_requested = CASE status WHEN 'Running' THEN 1 ELSE cancel_requested END
WHERE id = ? AND (status = 'Pending' OR (status = 'Running' AND cancel_requested = 0))
RETURNING *;

-- name: cancel_requested
SELECT id FROM tasks WHERE status = 'Running' AND cancel_requested = 1 AND id IN ({});

-- name: retry
UPDATE tasks
SET status = 'Pending', attempts = 0, run_at = ?, started_at = NULL, finished_at = NULL,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, cancel_requested = 0,
    result = NULL, error = NULL, traceback = NULL, progress = NULL
WHERE id = ?
RETURNING *;

-- name: expired
SELECT * FROM tasks WHERE status = 'Running' AND lease_expires_at < ?;

-- name: leader
SELECT holder, expires_at FROM leaders WHERE role = 'maintenance';

-- name: set_leader
INSERT INTO leaders (role, holder, expires_at) VALUES ('maintenance', ?1, ?2)
ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at;

-- name: resign
DELETE FROM leaders WHERE role = 'maintenance' AND holder = ?;

-- name: rescue
UPDATE tasks
SET status = ?, finished_at = ?, error = ?, lease_token = NULL, lease_expires_at = NULL
WHERE seq = ? AND status = 'Running';

-- name: prune
-- A NULL cutoff compares as unknown, so statuses missing from the mapping are kept.
DELETE FROM tasks WHERE seq IN (
    SELECT seq FROM tasks
    WHERE (status = 'Completed' AND finished_at < ?)
       OR (status = 'Failed' AND finished_at < ?)
       OR (status = 'Cancelled' AND finished_at < ?)
    ORDER BY finished_at LIMIT ?
);

-- name: get
SELECT * FROM tasks WHERE id = ?;

-- name: get_by_name
SELECT * FROM tasks WHERE name = ?
ORDER BY status IN ('Pending', 'Running') DESC, seq DESC LIMIT 1;

-- name: list
SELECT * FROM tasks WHERE {where} ORDER BY seq DESC LIMIT ?;

-- name: counts
SELECT queue, status, count(*) FROM tasks GROUP BY queue, status;

-- name: worker_beat
INSERT INTO workers (id, info, started_at, last_seen, expires_at) VALUES (?1, ?2, ?3, ?3, ?4)
ON CONFLICT (id) DO UPDATE
SET info = excluded.info, last_seen = excluded.last_seen, expires_at = excluded.expires_at;

-- name: worker_gone
DELETE FROM workers WHERE id = ?;

-- name: forget_workers
DELETE FROM workers WHERE expires_at <= ?;

-- name: workers
SELECT id, info, started_at, last_seen, expires_at FROM workers ORDER BY started_at, id;

-- name: schedule_insert
INSERT INTO schedules (name, definition, last_tick, paused, updated_at)
VALUES (?, ?, NULL, 0, ?)
RETURNING name, definition, last_tick, last_fired, paused, updated_at;

-- name: schedule_replace
INSERT INTO schedules (name, definition, last_tick, paused, updated_at)
VALUES (?, ?, NULL, 0, ?)
ON CONFLICT (name) DO UPDATE
SET definition = excluded.definition, updated_at = excluded.updated_at
RETURNING name, definition, last_tick, last_fired, paused, updated_at;

-- name: schedule_get
SELECT name, definition, last_tick, last_fired, paused, updated_at FROM schedules WHERE name = ?;

-- name: schedule_list
SELECT name, definition, last_tick, last_fired, paused, updated_at FROM schedules ORDER BY name;

-- name: schedule_delete
DELETE FROM schedules WHERE name = ?;

-- name: schedule_pause
-- Resuming a paused schedule forgets its last tick: the ticks missed meanwhile never fire.
UPDATE schedules
SET last_tick = CASE WHEN ?1 THEN last_tick ELSE NULL END, paused = ?1, updated_at = ?2
WHERE name = ?3 AND paused <> ?1
RETURNING name, definition, last_tick, last_fired, paused, updated_at;

-- name: schedule_fire
-- The compare-and-set that makes each tick fire once ("IS" also matches NULL to NULL).
-- A NULL fired tick (nothing submitted) leaves last_fired as it was.
UPDATE schedules SET last_tick = ?, last_fired = coalesce(?, last_fired), updated_at = ?
WHERE name = ? AND paused = 0 AND last_tick IS ?;

-- name: count_active
SELECT count(*) FROM tasks
WHERE status IN ('Pending', 'Running') AND name IS NOT NULL AND substr(name, 1, length(?1)) = ?1;
