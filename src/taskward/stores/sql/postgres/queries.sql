-- The PostgreSQL store's statements, one per "-- name:" header, loaded by
-- taskward.stores.postgres.statements. The schema itself is in the numbered migrations
-- beside this file. Lines right under a header declare what the connection runner may do:
--   "-- retry: read"  only reads (no write, no row lock): sent again after a lost connection
--   "-- prepared"     returns rows, fixed text: prepared once per held connection
-- Values are always bound parameters. In statements that need the time, $1 is the fake
-- clock of the contract tests, NULL in production: taskward_now($1) is then now().
-- Rows are read by column name, so "RETURNING *" does not depend on the column order.

-- name: bootstrap
-- The migrations' own bookkeeping: one row per migration applied.
CREATE TABLE IF NOT EXISTS taskward_schema_version (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: has_version_table
-- retry: read
SELECT to_regclass('taskward_schema_version') IS NOT NULL;

-- name: schema_version
-- retry: read
SELECT coalesce(max(version), 0) FROM taskward_schema_version;

-- name: record_version
INSERT INTO taskward_schema_version (version) VALUES ($1);

-- name: xact_lock
SELECT pg_advisory_xact_lock($1);

-- name: now
-- retry: read
-- prepared
SELECT taskward_now($1);

-- name: insert
-- prepared
-- ORDER BY n hands out seqs in the order given.
INSERT INTO taskward_tasks (id, task, args, name, priority, queue, status, max_attempts,
                            timeout, run_at, created_at, traceparent)
SELECT t.id, t.task, t.args, t.name, t.priority, t.queue, 'Pending', t.max_attempts,
       t.timeout, coalesce(t.run_at, taskward_now($1) + coalesce(t.delay, 0)), taskward_now($1),
       t.traceparent
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::text[],
            $8::integer[], $9::float8[], $10::float8[], $11::float8[], $12::text[])
     WITH ORDINALITY AS t(id, task, args, name, priority, queue, max_attempts, timeout, delay,
                          run_at, traceparent, n)
ORDER BY t.n
RETURNING id, seq, run_at, created_at;

-- name: insert_one
-- prepared
-- One task: plain VALUES (cheaper to bind and run than the arrays above).
INSERT INTO taskward_tasks (id, task, args, name, priority, queue, status, max_attempts,
                            timeout, run_at, created_at, traceparent)
VALUES ($2, $3, $4, $5, $6, $7, 'Pending', $8, $9,
        coalesce($11, taskward_now($1) + coalesce($10, 0)), taskward_now($1), $12)
RETURNING seq, run_at, created_at;

-- name: reserve_seqs
-- Before a COPY of $2 tasks: the store's time, and $2 seqs from the column's own sequence,
-- in ascending order (a concurrent insert may take values in between: that is fine).
SELECT taskward_now($1) AS now,
       array(SELECT nextval('taskward_tasks_seq_seq'::regclass) FROM generate_series(1, $2))
           AS seqs;

-- name: claim_all
-- prepared
-- Claims take rows with FOR UPDATE SKIP LOCKED: concurrent claimers pass over each other's
-- rows instead of queueing behind them. The CTE runs once, so LIMIT bounds the claim.
WITH picked AS (
    SELECT seq FROM taskward_tasks
    WHERE status = 'Pending' AND run_at <= taskward_now($1)
    ORDER BY priority, run_at, seq
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE taskward_tasks AS t
SET status = 'Running', attempts = t.attempts + 1, started_at = taskward_now($1),
    worker_id = $2, lease_token = replace(gen_random_uuid()::text, '-', ''),
    lease_expires_at = taskward_now($1) + $3
FROM picked WHERE t.seq = picked.seq
RETURNING t.*;

-- name: claim_queue
-- prepared
WITH picked AS (
    SELECT seq FROM taskward_tasks
    WHERE status = 'Pending' AND queue = $5 AND run_at <= taskward_now($1)
    ORDER BY priority, run_at, seq
    LIMIT $4
    FOR UPDATE SKIP LOCKED
)
UPDATE taskward_tasks AS t
SET status = 'Running', attempts = t.attempts + 1, started_at = taskward_now($1),
    worker_id = $2, lease_token = replace(gen_random_uuid()::text, '-', ''),
    lease_expires_at = taskward_now($1) + $3
FROM picked WHERE t.seq = picked.seq
RETURNING t.*;

-- name: claim_queues
-- prepared
-- Several queues: the best of each queue's own index range, merged. (One range scan with
-- "queue = ANY(...)" would have to sort every Pending task of those queues.)
WITH picked AS (
    SELECT c.seq FROM unnest($5::text[]) AS q(name)
    CROSS JOIN LATERAL (
        SELECT seq, priority, run_at FROM taskward_tasks
        WHERE status = 'Pending' AND queue = q.name AND run_at <= taskward_now($1)
        ORDER BY priority, run_at, seq
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.priority, c.run_at, c.seq
    LIMIT $4
)
UPDATE taskward_tasks AS t
SET status = 'Running', attempts = t.attempts + 1, started_at = taskward_now($1),
    worker_id = $2, lease_token = replace(gen_random_uuid()::text, '-', ''),
    lease_expires_at = taskward_now($1) + $3
FROM picked WHERE t.seq = picked.seq
RETURNING t.*;

-- name: heartbeat
-- prepared
UPDATE taskward_tasks AS t SET lease_expires_at = taskward_now($1) + $2
FROM unnest($3::uuid[], $4::text[]) AS l(id, token)
WHERE t.id = l.id AND t.status = 'Running' AND t.lease_token = l.token
RETURNING t.id;

-- name: finish
UPDATE taskward_tasks
SET status = $2, result = $3, error = $4, traceback = $5, finished_at = taskward_now($1),
    lease_token = NULL, lease_expires_at = NULL
WHERE id = $6 AND status = 'Running' AND lease_token = $7;

-- name: finish_many
-- prepared
-- Many finishes in one statement: $2.. are parallel arrays, one element per outcome.
UPDATE taskward_tasks AS t
SET status = v.status, result = v.result, error = v.error, traceback = v.traceback,
    finished_at = taskward_now($1), lease_token = NULL, lease_expires_at = NULL
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
    AS v (id, token, status, result, error, traceback)
WHERE t.id = v.id AND t.status = 'Running' AND t.lease_token = v.token
RETURNING t.id;

-- name: requeue
-- Without a new error the previous one (and its traceback) stays, as in a graceful release.
UPDATE taskward_tasks
SET status = 'Pending', run_at = taskward_now($1) + $2,
    attempts = CASE WHEN $3 THEN greatest(attempts - 1, 0) ELSE attempts END,
    error = coalesce($4, error),
    traceback = CASE WHEN $4::text IS NULL THEN traceback ELSE $5 END,
    lease_token = NULL, lease_expires_at = NULL, cancel_requested = false
WHERE id = $6 AND status = 'Running' AND lease_token = $7;

-- name: set_progress
UPDATE taskward_tasks SET progress = $1
WHERE id = $2 AND status = 'Running' AND lease_token = $3;

-- name: request_cancel
-- prepared
-- SET expressions see the old row, so one statement handles both active statuses.
UPDATE taskward_tasks
SET status = CASE status WHEN 'Pending' THEN 'Cancelled' ELSE status END,
    finished_at = CASE status WHEN 'Pending' THEN taskward_now($1) ELSE finished_at END,
    cancel_requested = CASE status WHEN 'Running' THEN true ELSE cancel_requested END
WHERE id = $2 AND (status = 'Pending' OR (status = 'Running' AND NOT cancel_requested))
RETURNING *;

-- name: cancel_requested
-- retry: read
-- prepared
SELECT id FROM taskward_tasks
WHERE id = ANY($1::uuid[]) AND status = 'Running' AND cancel_requested;

-- name: retry
-- prepared
UPDATE taskward_tasks
SET status = 'Pending', attempts = 0, run_at = taskward_now($1), started_at = NULL,
    finished_at = NULL, lease_token = NULL, lease_expires_at = NULL, worker_id = NULL,
    cancel_requested = false, result = NULL, error = NULL, traceback = NULL, progress = NULL
WHERE id = $2 AND status = ANY($3::text[])
RETURNING *;

-- name: expired
-- Locked until the rescue's transaction ends; another rescuer skips them.
SELECT *, taskward_now($1) AS now FROM taskward_tasks
WHERE status = 'Running' AND lease_expires_at < taskward_now($1)
ORDER BY seq
FOR UPDATE SKIP LOCKED;

-- name: leading
-- Whether $2 holds the maintenance role now; the row lock keeps it from passing on until
-- the caller's transaction ends (a takeover waits for it).
SELECT true FROM taskward_leaders
WHERE role = 'maintenance' AND holder = $2 AND expires_at > taskward_now($1)
FOR SHARE;

-- name: rescue
UPDATE taskward_tasks AS t
SET status = r.status, finished_at = r.finished_at, error = r.error,
    lease_token = NULL, lease_expires_at = NULL
FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[])
     AS r(id, status, finished_at, error)
WHERE t.id = r.id AND t.status = 'Running';

-- name: prune
-- The oldest of each status from its own index range, then the oldest of those. A NULL age
-- makes its comparison unknown, so statuses missing from the mapping are kept.
DELETE FROM taskward_tasks WHERE id IN (
    SELECT id FROM (
        (SELECT id, finished_at FROM taskward_tasks
         WHERE status = 'Completed' AND finished_at < taskward_now($1) - $2
         ORDER BY finished_at LIMIT $5)
        UNION ALL
        (SELECT id, finished_at FROM taskward_tasks
         WHERE status = 'Failed' AND finished_at < taskward_now($1) - $3
         ORDER BY finished_at LIMIT $5)
        UNION ALL
        (SELECT id, finished_at FROM taskward_tasks
         WHERE status = 'Cancelled' AND finished_at < taskward_now($1) - $4
         ORDER BY finished_at LIMIT $5)
    ) AS old
    ORDER BY finished_at LIMIT $5
);

-- name: get
-- retry: read
-- prepared
SELECT * FROM taskward_tasks WHERE id = $1;

-- name: get_by_name
-- retry: read
-- prepared
SELECT * FROM taskward_tasks WHERE name = $1
ORDER BY status IN ('Pending', 'Running') DESC, seq DESC LIMIT 1;

-- name: list
-- "{where}" is filled with fixed conditions joined by AND; their values are bound. A
-- template: statements.list_statement builds the statement and declares it there.
SELECT * FROM taskward_tasks WHERE {where} ORDER BY seq DESC LIMIT {limit};

-- name: counts
-- retry: read
-- prepared
SELECT queue, status, count(*) AS n FROM taskward_tasks GROUP BY queue, status;

-- name: pending_heads
-- retry: read
-- prepared
SELECT queue, run_at, taskward_now($1) AS now FROM (
    -- Store.oldest_pending: the first entry of each (queue, priority) range of the claim
    -- index taskward_tasks_claim, which holds that pair's earliest run_at. It skips from one
    -- pair to the next, one index seek each (the next priority of the same queue, else the
    -- first of the next queue; LIMIT 1 stops the Append at the first that finds one), so it
    -- reads as many entries as there are pairs, however many tasks wait.
    WITH RECURSIVE heads AS (
        (SELECT queue, priority, run_at FROM taskward_tasks WHERE status = 'Pending'
         ORDER BY queue, priority, run_at LIMIT 1)
        UNION ALL
        SELECT n.queue, n.priority, n.run_at FROM heads AS h CROSS JOIN LATERAL (
            (SELECT t.queue, t.priority, t.run_at FROM taskward_tasks AS t
             WHERE t.status = 'Pending' AND t.queue = h.queue AND t.priority > h.priority
             ORDER BY t.priority, t.run_at LIMIT 1)
            UNION ALL
            (SELECT t.queue, t.priority, t.run_at FROM taskward_tasks AS t
             WHERE t.status = 'Pending' AND t.queue > h.queue
             ORDER BY t.queue, t.priority, t.run_at LIMIT 1)
            LIMIT 1
        ) AS n
    )
    SELECT queue, run_at FROM heads
) AS heads;

-- name: worker_beat
INSERT INTO taskward_workers AS w (id, info, started_at, last_seen, expires_at)
VALUES ($2, $3, taskward_now($1), taskward_now($1), taskward_now($1) + $4)
ON CONFLICT (id) DO UPDATE
SET info = excluded.info, last_seen = excluded.last_seen, expires_at = excluded.expires_at;

-- name: worker_gone
DELETE FROM taskward_workers WHERE id = $1;

-- name: workers
-- prepared
-- Forgets the workers whose beat expired, then lists the others.
WITH gone AS (DELETE FROM taskward_workers WHERE expires_at <= taskward_now($1))
SELECT id, info, started_at, last_seen, expires_at FROM taskward_workers
WHERE expires_at > taskward_now($1)
ORDER BY started_at, id;

-- name: lead
-- prepared
-- Take the maintenance role for $2 until now + $3 seconds, or renew it: only when it is free,
-- expired, or already $2's. A row comes back when $2 leads.
INSERT INTO taskward_leaders AS l (role, holder, expires_at)
VALUES ('maintenance', $2, taskward_now($1) + $3)
ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE l.holder = excluded.holder OR l.expires_at <= taskward_now($1)
RETURNING holder;

-- name: resign
DELETE FROM taskward_leaders WHERE role = 'maintenance' AND holder = $1;
