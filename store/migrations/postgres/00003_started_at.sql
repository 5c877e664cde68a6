-- +goose Up
-- When a workflow first ran: its duration counts from here, however many
-- attempts (each writes its start again) it took.
ALTER TABLE workflow_metadata ADD COLUMN started_at TIMESTAMP;

-- +goose Down
ALTER TABLE workflow_metadata DROP COLUMN started_at;
