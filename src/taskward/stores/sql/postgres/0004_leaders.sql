-- taskward PostgreSQL schema, version 4: leadership as a lease row on the database clock.
--
-- One row per role ("maintenance"): who holds it and until when (POSIX seconds of
-- taskward_now()). A holder renews its row well before it expires; anyone may take a row
-- that expired. A process that is stopped or cut off simply stops renewing, so its role
-- passes on after one lease, whatever happens to its session (an advisory lock would stay
-- held for as long as the session lives).
CREATE TABLE taskward_leaders (
    role       text             PRIMARY KEY,
    holder     text             NOT NULL,
    expires_at double precision NOT NULL
);
