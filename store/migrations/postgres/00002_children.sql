-- +goose Up
-- A workflow's children (full-analysis calls code-analysis, security-scan
-- and chain-of-debate), by role.
CREATE TABLE workflow_children (
    parent_id  TEXT NOT NULL,
    child_id   TEXT NOT NULL,
    role       TEXT NOT NULL,
    workflow   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX workflow_children_child ON workflow_children (child_id);

-- +goose Down
DROP TABLE workflow_children;
