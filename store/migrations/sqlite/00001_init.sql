-- +goose Up
CREATE TABLE workflow_metadata (
    id           TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    status       TEXT NOT NULL,
    input        TEXT,
    output       TEXT,
    error        TEXT,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    completed_at TIMESTAMP,
    duration_ms  INTEGER
);
CREATE INDEX workflow_metadata_created_at ON workflow_metadata (created_at);
CREATE INDEX workflow_metadata_status ON workflow_metadata (status);

CREATE TABLE agent_executions (
    workflow_id TEXT    NOT NULL,
    agent_name  TEXT    NOT NULL,
    step        TEXT    NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 1,
    status      TEXT    NOT NULL,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    tokens_in   INTEGER NOT NULL DEFAULT 0,
    tokens_out  INTEGER NOT NULL DEFAULT 0,
    cost_usd    REAL    NOT NULL DEFAULT 0,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (workflow_id, step)
);
CREATE INDEX agent_executions_agent_name ON agent_executions (agent_name);

CREATE TABLE artifacts (
    id         TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    content    BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE workflow_artifacts (
    workflow_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    artifact_id TEXT NOT NULL REFERENCES artifacts (id),
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (workflow_id, name)
);

-- +goose Down
DROP TABLE workflow_artifacts;
DROP TABLE artifacts;
DROP TABLE agent_executions;
DROP TABLE workflow_metadata;
