-- taskward PostgreSQL schema, version 6: a task's trace context.
--
-- traceparent is the W3C trace context of the task's send span (55 characters), which its
-- runs continue (taskward.tracing). Rows of an older schema start with NULL: their runs
-- start traces of their own. Adding a nullable column without a default rewrites no row.
ALTER TABLE taskward_tasks ADD COLUMN traceparent text;
