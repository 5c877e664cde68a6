-- +goose Up
-- The providers' limits shared by every service on this store (package
-- limits): the permits held, each a lease its holder renews; the last
-- minute's calls and tokens in one row per second, for requests and
-- tokens per minute; and each key's calls at once now allowed after 429s,
-- and until when it cools down. Times are Unix milliseconds, seconds in
-- the window.
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
CREATE TABLE limit_window (
  limit_key TEXT NOT NULL,
  second    BIGINT NOT NULL,
  requests  INTEGER NOT NULL,
  tokens    INTEGER NOT NULL,
  throttled INTEGER NOT NULL,
  PRIMARY KEY (limit_key, second)
);
CREATE TABLE limit_keys (
  limit_key     TEXT PRIMARY KEY,
  allowed       INTEGER NOT NULL,
  successes     INTEGER NOT NULL,
  cooling_until BIGINT NOT NULL
);

-- +goose Down
DROP TABLE limit_keys;
DROP TABLE limit_window;
DROP TABLE limit_leases;
