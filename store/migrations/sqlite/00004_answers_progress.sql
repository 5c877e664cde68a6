-- +goose Up
-- A call's answer, for the run (the engine's invocation) that made it: a
-- step that makes several calls reuses, when it is retried, the answers
-- its interrupted attempt already had instead of calling again.
ALTER TABLE agent_executions ADD COLUMN run_id TEXT;
ALTER TABLE agent_executions ADD COLUMN answer TEXT;
-- What a running workflow last published, and its place in the order of
-- its publications, so that a late write never replaces a newer one.
ALTER TABLE workflow_metadata ADD COLUMN progress TEXT;
ALTER TABLE workflow_metadata ADD COLUMN progress_seq INTEGER;

-- +goose Down
ALTER TABLE workflow_metadata DROP COLUMN progress_seq;
ALTER TABLE workflow_metadata DROP COLUMN progress;
ALTER TABLE agent_executions DROP COLUMN answer;
ALTER TABLE agent_executions DROP COLUMN run_id;
