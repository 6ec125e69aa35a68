-- taskward PostgreSQL schema, version 1. Run by `taskward migrate` in one transaction.
--
-- Times are POSIX seconds as double precision (the TaskRecord fields are floats; a float
-- column round-trips them exactly). Every "now" below comes from taskward_now(): the
-- database clock, so hosts with skewed clocks agree on leases and due times.

-- The store's clock: the transaction's now() in POSIX seconds. The argument is a fixed
-- time for the contract tests' fake clock and is NULL in production.
CREATE FUNCTION taskward_now(fake double precision) RETURNS double precision
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(fake, extract(epoch FROM now())::double precision) $$;

CREATE TABLE taskward_tasks (
    id               uuid             PRIMARY KEY,
    -- Insertion order: claim ties and list pages follow it.
    seq              bigint           GENERATED ALWAYS AS IDENTITY UNIQUE,
    task             text             NOT NULL,
    args             text             NOT NULL,
    name             text,
    priority         integer          NOT NULL,
    queue            text             NOT NULL,
    status           text             NOT NULL CHECK (
        status IN ('Pending', 'Running', 'Completed', 'Failed', 'Cancelled')
    ),
    attempts         integer          NOT NULL DEFAULT 0,
    max_attempts     integer          NOT NULL,
    timeout          double precision,
    run_at           double precision NOT NULL,
    created_at       double precision NOT NULL,
    started_at       double precision,
    finished_at      double precision,
    lease_token      text,
    lease_expires_at double precision,
    worker_id        text,
    cancel_requested boolean          NOT NULL DEFAULT false,
    result           text,
    error            text,
    traceback        text,
    progress         text
);

-- A name is held only while its task is active: this index enforces exactly that.
CREATE UNIQUE INDEX taskward_tasks_active_name ON taskward_tasks (name)
    WHERE name IS NOT NULL AND status IN ('Pending', 'Running');
CREATE INDEX taskward_tasks_name ON taskward_tasks (name, seq) WHERE name IS NOT NULL;
-- Claims: the best due task of one queue is the first entry of its range here...
CREATE INDEX taskward_tasks_claim ON taskward_tasks (queue, priority, run_at, seq)
    WHERE status = 'Pending';
-- ...and of every queue, here. Both are partial: their size is the backlog, not the history.
CREATE INDEX taskward_tasks_claim_any ON taskward_tasks (priority, run_at, seq)
    WHERE status = 'Pending';
CREATE INDEX taskward_tasks_lease ON taskward_tasks (lease_expires_at)
    WHERE status = 'Running';
CREATE INDEX taskward_tasks_finished ON taskward_tasks (status, finished_at)
    WHERE finished_at IS NOT NULL;

-- Worker processes that said they are alive; a row is kept while its beat has not expired.
CREATE TABLE taskward_workers (
    id         text             PRIMARY KEY,
    info       text             NOT NULL,
    started_at double precision NOT NULL,
    last_seen  double precision NOT NULL,
    expires_at double precision NOT NULL
);

-- Wake-ups: workers LISTEN on "taskward". NOTIFY is transactional, so a task submitted in a
-- caller's transaction wakes workers only when (and if) it commits. Identical notifications
-- of one transaction are delivered once.
CREATE FUNCTION taskward_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('taskward', '');
    RETURN NULL;
END
$$;

-- One notification per INSERT statement, however many rows it inserts.
CREATE TRIGGER taskward_tasks_inserted AFTER INSERT ON taskward_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION taskward_notify();

-- Updates that make a task claimable (retry, requeue, rescue) or ask for a cancel.
CREATE TRIGGER taskward_tasks_changed AFTER UPDATE ON taskward_tasks
    FOR EACH ROW
    WHEN ((NEW.status = 'Pending' AND OLD.status <> 'Pending')
          OR (NEW.cancel_requested AND NOT OLD.cancel_requested)
          OR (NEW.status = 'Cancelled' AND OLD.status = 'Pending'))
    EXECUTE FUNCTION taskward_notify();
