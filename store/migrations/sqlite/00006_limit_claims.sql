-- +goose Up
-- A process holds a claim of each key it calls and grants its own calls
-- from it (package limits): a row per key and process, in place of a row
-- per call. requests and tokens are what it reserved in the window at
-- second; slots its calls at once; in_use and waiting what it had at its
-- last word. And the wait a run is in, for its status.
DROP TABLE limit_leases;
CREATE TABLE limit_claims (
  limit_key  TEXT NOT NULL,
  holder     TEXT NOT NULL,
  slots      INTEGER NOT NULL,
  requests   INTEGER NOT NULL,
  tokens     BIGINT NOT NULL,
  second     BIGINT NOT NULL,
  in_use     INTEGER NOT NULL,
  waiting    INTEGER NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (limit_key, holder)
);
ALTER TABLE workflow_metadata ADD COLUMN waiting TEXT;

-- +goose Down
ALTER TABLE workflow_metadata DROP COLUMN waiting;
DROP TABLE limit_claims;
CREATE TABLE limit_leases (
  lease      TEXT PRIMARY KEY,
  limit_key  TEXT NOT NULL,
  holder     TEXT NOT NULL,
  expires_at BIGINT NOT NULL,
  second     BIGINT NOT NULL,
  tokens     INTEGER NOT NULL
);
CREATE INDEX limit_leases_key ON limit_leases (limit_key);
CREATE INDEX limit_leases_holder ON limit_leases (holder);
