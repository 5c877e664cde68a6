-- The writes a release on schema 4 makes, with values: while a newer
-- version drains an older one, both write to the same store, so every
-- migration after 4 must keep these working (add columns with defaults
-- and tables; never rename, drop or make NOT NULL what these write).
-- One statement a line; ? placeholders are not used.
INSERT INTO workflow_metadata (id, workflow, status, input, created_at, updated_at) VALUES ('compat-1', 'chain-of-debate', 'pending', '{"topic":"t"}', '2026-12-01 10:00:00', '2026-12-01 10:00:00') ON CONFLICT (id) DO NOTHING
INSERT INTO workflow_metadata (id, workflow, status, input, created_at, updated_at, started_at) VALUES ('compat-1', 'chain-of-debate', 'running', '{"topic":"t"}', '2026-12-01 10:00:01', '2026-12-01 10:00:01', '2026-12-01 10:00:01') ON CONFLICT (id) DO UPDATE SET status = excluded.status, input = excluded.input, updated_at = excluded.updated_at, started_at = COALESCE(workflow_metadata.started_at, excluded.started_at) WHERE workflow_metadata.status IN ('pending', 'running', 'not-started', 'paused')
INSERT INTO agent_executions (workflow_id, agent_name, step, attempt, status, duration_ms, tokens_in, tokens_out, cost_usd, created_at, run_id, answer) VALUES ('compat-1', 'alice', 'round-1/alice', 1, 'completed', 12, 10, 20, 0.001, '2026-12-01 10:00:02', 'inv_1', '{"position":"yes"}') ON CONFLICT (workflow_id, step) DO UPDATE SET agent_name = excluded.agent_name, attempt = excluded.attempt, status = excluded.status
UPDATE workflow_metadata SET progress = '{"phase":"round 1"}', progress_seq = 1 WHERE id = 'compat-1' AND (progress_seq IS NULL OR progress_seq <= 1)
INSERT INTO artifacts (id, size, content, created_at) VALUES ('sha-compat', 2, 'hi', '2026-12-01 10:00:03') ON CONFLICT (id) DO NOTHING
INSERT INTO workflow_artifacts (workflow_id, name, artifact_id, created_at) VALUES ('compat-1', 'transcript', 'sha-compat', '2026-12-01 10:00:03') ON CONFLICT (workflow_id, name) DO UPDATE SET artifact_id = excluded.artifact_id
INSERT INTO workflow_children (parent_id, child_id, role, workflow, created_at) VALUES ('compat-1', 'compat-1-debate', 'debate', 'chain-of-debate', '2026-12-01 10:00:04') ON CONFLICT (parent_id, child_id) DO NOTHING
UPDATE workflow_metadata SET status = 'completed', output = '{"ok":true}', error = NULL, updated_at = '2026-12-01 10:00:05', completed_at = '2026-12-01 10:00:05', duration_ms = 4000 WHERE id = 'compat-1' AND workflow = 'chain-of-debate'
UPDATE workflow_metadata SET status = 'failed', error = 'killed', updated_at = '2026-12-01 10:00:06' WHERE id = 'compat-0' AND status = 'pending'
