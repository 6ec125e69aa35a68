-- The SQLite store's statements, one per "-- name:" header, loaded by
-- taskward.stores.sqlite.schema. Values are always bound parameters. A "{}" is filled with
-- "?, ?, ..." by the store, for lists of ids or queues, and a "{where}" with "AND"-joined
-- fixed conditions. Rows are read by column name (taskward.stores.sqlite.rows), so a
-- statement may return its columns in any order.

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

-- name: schema_5
-- Version 5: traceparent, the W3C trace context of a task's send span (55 characters),
-- which its runs continue (taskward.tracing). Tasks of an older file start with NULL: their
-- runs start traces of their own.
ALTER TABLE tasks ADD COLUMN traceparent TEXT;

-- name: insert_one
INSERT INTO tasks (id, task, args, name, priority, queue, status, max_attempts, timeout,
                   run_at, created_at, traceparent)
VALUES (?, ?, ?, ?, ?, ?, 'Pending', ?, ?, ?, ?, ?);

-- name: insert_many
-- Bulk inserts give each row its seq, so the rows can be returned without reading them back.
INSERT INTO tasks (seq, id, task, args, name, priority, queue, status, max_attempts, timeout,
                   run_at, created_at, traceparent)
VALUES (?, ?, ?, ?, ?, ?, ?, 'Pending', ?, ?, ?, ?, ?);

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
-- lease token. Claim, finish and requeue say what rules.claimed_changes, finished_changes
-- and requeued_changes say, in one statement each: the workers' hot path reads no row first.
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

-- name: cancel_requested
SELECT id FROM tasks WHERE status = 'Running' AND cancel_requested = 1 AND id IN ({});

-- name: set_state
-- Writes the state a rule (taskward.stores.rules) decided for a row read in the same write
-- transaction: a cancel, a retry, a rescue. The status check only guards against a bug.
UPDATE tasks
SET status = :status, attempts = :attempts, run_at = :run_at, started_at = :started_at,
    finished_at = :finished_at, lease_token = :lease_token,
    lease_expires_at = :lease_expires_at, worker_id = :worker_id,
    cancel_requested = :cancel_requested, result = :result, error = :error,
    traceback = :traceback, progress = :progress
WHERE seq = :seq AND status = :old_status;

-- name: expired
SELECT * FROM tasks WHERE status = 'Running' AND lease_expires_at < ?;

-- name: leader
SELECT holder, expires_at FROM leaders WHERE role = 'maintenance';

-- name: set_leader
INSERT INTO leaders (role, holder, expires_at) VALUES ('maintenance', ?1, ?2)
ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at;

-- name: resign
DELETE FROM leaders WHERE role = 'maintenance' AND holder = ?;

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
SELECT queue, status, count(*) AS n FROM tasks GROUP BY queue, status;

-- name: pending_heads
-- Store.oldest_pending: the first entry of each (queue, priority) range of tasks_claim,
-- which holds that pair's earliest run_at. It skips from one pair to the next, one index
-- seek each (the next priority of the same queue, else the first of the next queue), so it
-- reads as many entries as there are pairs, however many tasks wait.
WITH RECURSIVE heads(queue, priority, run_at) AS (
    SELECT * FROM (
        SELECT queue, priority, run_at FROM tasks INDEXED BY tasks_claim
        WHERE status = 'Pending' AND cancel_requested = 0
        ORDER BY queue, priority, run_at LIMIT 1
    )
    UNION ALL
    SELECT t.queue, t.priority, t.run_at FROM heads AS h JOIN tasks AS t ON t.seq = coalesce(
        (SELECT s.seq FROM tasks AS s INDEXED BY tasks_claim
         WHERE s.status = 'Pending' AND s.cancel_requested = 0
           AND s.queue = h.queue AND s.priority > h.priority
         ORDER BY s.priority, s.run_at LIMIT 1),
        (SELECT s.seq FROM tasks AS s INDEXED BY tasks_claim
         WHERE s.status = 'Pending' AND s.cancel_requested = 0 AND s.queue > h.queue
         ORDER BY s.queue, s.priority, s.run_at LIMIT 1)
    )
)
SELECT queue, run_at FROM heads;

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

-- name: schedule_set
-- Writes what a rule decided for a schedule read in the same write transaction: a pause or
-- resume, a firing (taskward.stores.rules.paused_changes, fired_changes).
UPDATE schedules
SET last_tick = :last_tick, last_fired = :last_fired, paused = :paused,
    updated_at = :updated_at
WHERE name = :name;

-- name: count_active
SELECT count(*) FROM tasks
WHERE status IN ('Pending', 'Running') AND name IS NOT NULL AND substr(name, 1, length(?1)) = ?1;
