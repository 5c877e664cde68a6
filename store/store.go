// Package store is the metadata store: the long memory of workflows (what
// ran, what failed, what each agent call cost) and the artifacts kept out of
// the Restate journal. One Store serves SQLite (modernc.org/sqlite, pure Go;
// the embedded default, a file in the state dir) and PostgreSQL (pgx) behind
// a small dialect seam; migrations per dialect are embedded and applied on
// Open (goose). Every write is an idempotent upsert keyed by workflow id and
// step, so a replayed journaled step never duplicates a row.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // driver "sqlite"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/workflow"
)

//go:embed migrations
var migrations embed.FS

// dialect is what differs between the two databases.
type dialect struct {
	name   string
	driver string
	goose  goose.Dialect
	dir    string
	// numbered placeholders ($1) instead of ?
	numbered bool
	// msBetween is SQL for the milliseconds from the timestamp expression
	// from to the timestamp parameter to (a placeholder).
	msBetween func(from, to string) string
	// writers is how many transactions of workflow writes run at once;
	// linger, how long a batch nobody waits for stays open (batch.go).
	writers int
	linger  time.Duration
}

var (
	sqliteDialect = dialect{name: "sqlite", driver: "sqlite", goose: goose.DialectSQLite3, dir: "migrations/sqlite", writers: 1, linger: time.Millisecond,
		msBetween: func(from, to string) string {
			return "CAST(ROUND((julianday(" + to + ") - julianday(" + from + ")) * 86400000) AS INTEGER)"
		}}
	postgresDialect = dialect{name: "postgres", driver: "pgx", goose: goose.DialectPostgres, dir: "migrations/postgres", numbered: true, writers: 2, linger: time.Millisecond,
		msBetween: func(from, to string) string {
			return "CAST(ROUND(EXTRACT(EPOCH FROM (CAST(" + to + " AS TIMESTAMP) - " + from + ")) * 1000) AS BIGINT)"
		}}
)

// rebind turns ? placeholders into $1, $2… for PostgreSQL.
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Store is the metadata store.
type Store struct {
	*core
	// urgent says whether the workflow whose writes these are waits for
	// them (Deferred); nil is always: the write commits without lingering.
	urgent func() bool
}

// core is the store itself; every Deferred view of it shares it.
type core struct {
	db *sql.DB
	d  dialect
	w  *writer // the workflows' writes, batched (batch.go)
	// inFlight are the answers on their way to the database: Answers
	// finds them there until they have committed, so that no answer is in
	// neither place.
	inFlight sync.Map // answerKey → json.RawMessage
	// checkpoints copy SQLite's WAL back into the database (SQLite only).
	checkpoints     sync.WaitGroup
	stopCheckpoints chan struct{}
	// stmts are the statements workflows run (their writes, and the reads
	// they make while they run), prepared once on the database.
	stmtsMu sync.Mutex
	stmts   map[string]*sql.Stmt
}

// Deferred is the store whose writes may linger in a batch while urgent
// reports false: the background writes of a workflow that does not wait
// for them yet (workflow.Deferring). It shares everything with s.
func (s *Store) Deferred(urgent func() bool) workflow.Records {
	return &Store{core: s.core, urgent: urgent}
}

// isUrgent reports whether a write must commit at once.
func (s *Store) isUrgent() bool { return s.urgent == nil || s.urgent() }

// prepared returns q prepared on the database, preparing it the first time.
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	if st, ok := s.stmts[q]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, s.d.rebind(q))
	if err != nil {
		return nil, transient(err)
	}
	if s.stmts == nil {
		s.stmts = map[string]*sql.Stmt{}
	}
	s.stmts[q] = st
	return st, nil
}

var (
	_ workflow.Records = (*Store)(nil)
	_ workflow.Memo    = (*Store)(nil)
)

// Open opens the store: PostgreSQL when databaseURL is a postgres:// URL,
// otherwise the SQLite file at sqlitePath. It applies pending migrations.
func Open(ctx context.Context, databaseURL, sqlitePath string) (*Store, error) {
	d, dsn := sqliteDialect, sqliteDSN(sqlitePath)
	if databaseURL != "" {
		d, dsn = postgresDialect, databaseURL
	}
	db, err := sql.Open(d.driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", d.name, err)
	}
	if d.name == sqliteDialect.name {
		// One writer at a time is what SQLite allows; a small pool lets
		// readers (the CLI) work beside the service thanks to WAL.
		db.SetMaxOpenConns(4)
	} else {
		db.SetMaxOpenConns(16)
		db.SetConnMaxIdleTime(time.Minute)
	}
	// Connections are kept, not closed when more than database/sql's two
	// idle ones are back in the pool: each new one would be opened again,
	// and the writers' statements prepared on it again, on the next write.
	db.SetMaxIdleConns(16)
	s := &Store{core: &core{db: db, d: d}}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.startWriter()
	if d.name == sqliteDialect.name {
		s.startCheckpoints()
	}
	return s, nil
}

// checkpointEvery is how often the WAL is copied back into the database.
const checkpointEvery = 250 * time.Millisecond

// startCheckpoints copies the WAL into the database in the background, on
// a connection of its own. SQLite's own checkpoints (every 1000 pages, off
// in the DSN) run inside the commit that crosses the mark, fsync included:
// under load that held the writer, and every workflow waiting on it, for
// tens of milliseconds several times a second. A passive checkpoint here
// never blocks the writer, which goes on appending to the WAL meanwhile.
func (s *Store) startCheckpoints() {
	s.stopCheckpoints = make(chan struct{})
	s.checkpoints.Go(func() {
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_, _ = s.db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			case <-s.stopCheckpoints:
				return
			}
		}
	})
}

// sqliteDSN opens the file in WAL mode. Transactions begin IMMEDIATE: a
// write transaction that reads first (a submission checks the id and the
// open count, then inserts) would otherwise take its snapshot at the read,
// and fail with SQLITE_BUSY_SNAPSHOT, without waiting, when another
// connection (another process's store) commits before its write; taking the
// write lock at BEGIN waits for it instead (busy_timeout).
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_time_format=sqlite&_txlock=immediate"
}

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, s.d.dir)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(s.d.goose, s.db, sub)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return transient(fmt.Errorf("migrate %s store: %w", s.d.name, err))
	}
	return nil
}

// SchemaVersion is the newest migration applied to the database, and the
// newest this build knows.
func (s *Store) SchemaVersion(ctx context.Context) (applied, known int64, err error) {
	sub, err := fs.Sub(migrations, s.d.dir)
	if err != nil {
		return 0, 0, err
	}
	p, err := goose.NewProvider(s.d.goose, s.db, sub)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: %w", err)
	}
	if applied, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, transient(err)
	}
	sources := p.ListSources()
	if len(sources) > 0 {
		known = sources[len(sources)-1].Version
	}
	return applied, known, nil
}

// Dialect names the backend: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// Close stops the writer and closes the database.
func (s *Store) Close() error {
	s.stopWriter()
	if s.stopCheckpoints != nil {
		close(s.stopCheckpoints)
		s.checkpoints.Wait()
		// Leave the database whole in its file, the WAL empty.
		_, _ = s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	s.stmtsMu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmtsMu.Unlock()
	return s.db.Close()
}

// execTx runs one statement in the writer's next transaction: for the
// workflows' writes (workflow.Records).
func (s *Store) execTx(ctx context.Context, q string, args ...any) error {
	return s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.execIn(ctx, tx, q, args...)
		return err
	})
}

// transient marks a database error as worth retrying: a database that is
// down, restarting or busy comes back.
func transient(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return fault.Wrap(fault.Unavailable, err, "store")
}

// exec runs one statement at once, outside the writer: for the CLI's and
// the reconciler's writes, which no workflow waits on in a batch.
func (s *Store) exec(ctx context.Context, q string, args ...any) error {
	_, err := s.db.ExecContext(ctx, s.d.rebind(q), args...)
	return transient(err)
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// ErrBusy is a submission refused because MaxOpen workflows are open.
var ErrBusy = errors.New("too many workflows at once")

// Submitted records a workflow as pending before it is sent to the engine,
// in one transaction with the checks that make an id one workflow's: an id
// another workflow type holds is a Conflict naming that type, and so is the
// same id with another input; the same id with the same input is not new
// (fresh is false) and is not counted. A new one is refused with ErrBusy
// while maxOpen (if positive) are open: counted and recorded together, so
// concurrent submissions cannot overshoot it.
func (s *Store) Submitted(ctx context.Context, id, wf string, input []byte, at time.Time, maxOpen int) (fresh bool, err error) {
	err = s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if s.d.name == postgresDialect.name {
			// PostgreSQL's writers run side by side: one submission at a
			// time across them, and across processes.
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7261853)`); err != nil {
				return transient(err)
			}
		}
		var held, heldInput sql.NullString
		err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT workflow, input FROM workflow_metadata WHERE id = ?`), id).Scan(&held, &heldInput)
		switch {
		case err == nil && held.String != wf:
			return fault.New(fault.Conflict, "id %s belongs to a %s workflow; a %s cannot use it (choose another Idempotency-Key)", id, held.String, wf)
		case err == nil && heldInput.Valid && heldInput.String != string(input):
			return fault.New(fault.Conflict, "id %s was submitted before with another request; the same Idempotency-Key must come with the same body", id)
		case err == nil:
			return nil // the same request again
		case !errors.Is(err, sql.ErrNoRows):
			return transient(err)
		}
		if maxOpen > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM workflow_metadata WHERE status IN (?, ?, ?)`), workflow.StatusPending, workflow.StatusRunning, workflow.StatusPaused).Scan(&n); err != nil {
				return transient(err)
			}
			if n >= maxOpen {
				return fault.Wrap(fault.Unavailable, ErrBusy, "%d workflows are open, the most at once (ULTRAMCP_API_MAX_OPEN); %s was not started, try again when some finish", n, wf)
			}
		}
		if _, err := s.execIn(ctx, tx, `INSERT INTO workflow_metadata (id, workflow, status, input, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?)`, id, wf, workflow.StatusPending, string(input), at.UTC(), at.UTC()); err != nil {
			return err
		}
		fresh = true
		return nil
	})
	return fresh, err
}

// Started implements workflow.Records: the workflow is running. A pending
// row keeps its creation time, a started one its first start; a finished
// one is left alone (every attempt of a workflow writes its start again).
// A row of another workflow type is never touched: that is a Conflict
// (a workflow started past the API, on the ingress socket, under an id
// another type holds). The input a submit recorded is kept: a replay's
// names the run it derives from, which the workflow's own is without.
func (s *Store) Started(ctx context.Context, id, wf string, input []byte, at time.Time) error {
	return s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.execIn(ctx, tx, `INSERT INTO workflow_metadata (id, workflow, status, input, created_at, updated_at, started_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET status = excluded.status, input = COALESCE(NULLIF(workflow_metadata.input, ''), excluded.input), updated_at = excluded.updated_at,
  started_at = COALESCE(workflow_metadata.started_at, excluded.started_at)
WHERE workflow_metadata.workflow = excluded.workflow AND workflow_metadata.status IN ('pending', 'running', 'not-started', 'paused')`,
			id, wf, workflow.StatusRunning, string(input), at.UTC(), at.UTC(), at.UTC())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return nil
		}
		// Nothing changed: a finished row replayed (fine), or another
		// workflow's row.
		var held string
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT workflow FROM workflow_metadata WHERE id = ?`), id).Scan(&held); err == nil && held != wf {
			return fault.New(fault.Conflict, "id %s belongs to a %s workflow; a %s cannot use it", id, held, wf)
		}
		return nil
	})
}

// Finished implements workflow.Records, in one statement: the duration
// counts from the first start. A workflow this store has no row for is an
// error, not a silent no-op: the service's store changed since the
// workflow started.
func (s *Store) Finished(ctx context.Context, id, wf, status string, output []byte, errMsg string, at time.Time) error {
	return s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := s.execIn(ctx, tx, `UPDATE workflow_metadata SET status = ?, output = ?, error = ?, updated_at = ?, completed_at = ?,
  duration_ms = `+s.d.msBetween("COALESCE(started_at, created_at)", "?")+`
WHERE id = ? AND workflow = ?`, status, nullString(string(output)), nullString(errMsg), at.UTC(), at.UTC(), at.UTC(), id, wf)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fault.New(fault.Permanent, "the %s store has no record of %s workflow %s: did ULTRAMCP_DATABASE_URL change since it started?", s.d.name, wf, id)
		}
		return nil
	})
}

// NotStarted records that a pending request could not be handed to the
// engine. Only a pending row changes: a workflow that already ran, or
// finished, keeps its state and its result.
func (s *Store) NotStarted(ctx context.Context, id, reason string, at time.Time) error {
	return s.exec(ctx, `UPDATE workflow_metadata SET status = ?, error = ?, updated_at = ? WHERE id = ? AND status = ?`,
		workflow.StatusNotStarted, nullString(reason), at.UTC(), id, workflow.StatusPending)
}

// Reconciled brings a workflow that has not finished in line with what the
// engine says of it: paused, failed (killed, cancelled, vanished), or
// completed with output. A finished row is left alone.
func (s *Store) Reconciled(ctx context.Context, id, status string, output []byte, reason string, at time.Time) error {
	completed := sql.NullTime{Time: at.UTC(), Valid: !workflow.Open(status)}
	return s.exec(ctx, `UPDATE workflow_metadata SET status = ?, output = COALESCE(?, output), error = ?, updated_at = ?, completed_at = ?
WHERE id = ? AND status IN ('pending', 'running', 'not-started', 'paused')`,
		status, nullString(string(output)), nullString(reason), at.UTC(), completed, id)
}

// RecordExecutions implements workflow.Records, in one transaction.
func (s *Store) RecordExecutions(ctx context.Context, execs []workflow.Execution) error {
	if len(execs) == 0 {
		return nil
	}
	var keys []answerKey
	for _, e := range execs {
		if e.Answer != nil {
			k := answerKey{e.WorkflowID, e.RunID, e.Step}
			s.inFlight.Store(k, e.Answer)
			keys = append(keys, k)
		}
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.recordExecutions(ctx, tx, execs) })
	if err == nil {
		for _, k := range keys {
			s.inFlight.Delete(k)
		}
	}
	return err
}

// answerKey names an answer: the call (workflow, step) in one run.
type answerKey struct{ workflow, run, step string }

func (s *Store) recordExecutions(ctx context.Context, tx *sql.Tx, execs []workflow.Execution) error {
	q := (`INSERT INTO agent_executions (workflow_id, agent_name, step, attempt, status, duration_ms, tokens_in, tokens_out, cost_usd, created_at, run_id, answer)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow_id, step) DO UPDATE SET agent_name = excluded.agent_name, attempt = excluded.attempt, status = excluded.status,
  duration_ms = excluded.duration_ms, tokens_in = excluded.tokens_in, tokens_out = excluded.tokens_out, cost_usd = excluded.cost_usd,
  run_id = COALESCE(excluded.run_id, agent_executions.run_id), answer = COALESCE(excluded.answer, agent_executions.answer)`)
	for _, e := range execs {
		attempt := max(e.Attempt, 1)
		if _, err := s.execIn(ctx, tx, q, e.WorkflowID, e.AgentName, e.Step, attempt, e.Status, e.DurationMS, e.TokensIn, e.TokensOut, e.CostUSD, e.CreatedAt.UTC(),
			nullString(e.RunID), nullString(string(e.Answer))); err != nil {
			return err
		}
	}
	return nil
}

// Answers implements workflow.Memo: the answers recorded for run, by
// step, those still on their way to the database included.
func (s *Store) Answers(ctx context.Context, workflowID, runID string) (map[string]json.RawMessage, error) {
	// The answers in flight first, the database next: one that commits in
	// between leaves inFlight only once it is in the database.
	out := map[string]json.RawMessage{}
	s.inFlight.Range(func(k, v any) bool {
		if k := k.(answerKey); k.workflow == workflowID && k.run == runID {
			out[k.step] = v.(json.RawMessage)
		}
		return true
	})
	q, err := s.prepared(ctx, `SELECT step, answer FROM agent_executions WHERE workflow_id = ? AND run_id = ? AND answer IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, workflowID, runID)
	if err != nil {
		return nil, transient(err)
	}
	defer rows.Close()
	for rows.Next() {
		var step, answer string
		if err := rows.Scan(&step, &answer); err != nil {
			return nil, transient(err)
		}
		out[step] = json.RawMessage(answer)
	}
	if err := rows.Err(); err != nil {
		return nil, transient(err)
	}
	return out, nil
}

// PublishedProgress is what a workflow last published in the store (nil
// if nothing).
func (s *Store) PublishedProgress(ctx context.Context, id string) (json.RawMessage, error) {
	var p sql.NullString
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT progress FROM workflow_metadata WHERE id = ?`), id).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) || !p.Valid {
		return nil, nil
	}
	if err != nil {
		return nil, transient(err)
	}
	return json.RawMessage(p.String), nil
}

// Progress implements workflow.Memo: what a workflow published, unless a
// later publication (a higher seq) is already there.
func (s *Store) Progress(ctx context.Context, id string, seq int, value []byte) error {
	return s.execTx(ctx, `UPDATE workflow_metadata SET progress = ?, progress_seq = ? WHERE id = ? AND (progress_seq IS NULL OR progress_seq <= ?)`,
		string(value), seq, id, seq)
}

// PutArtifact implements workflow.Records: content is stored once under its
// sha256 and linked to the workflow under name.
func (s *Store) PutArtifact(ctx context.Context, workflowID, name string, content []byte) (workflow.ArtifactRef, error) {
	ref := workflow.RefOf(name, content)
	now := time.Now().UTC()
	return ref, s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := s.execIn(ctx, tx, `INSERT INTO artifacts (id, size, content, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			ref.ID, len(content), content, now); err != nil {
			return err
		}
		_, err := s.execIn(ctx, tx, `INSERT INTO workflow_artifacts (workflow_id, name, artifact_id, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (workflow_id, name) DO UPDATE SET artifact_id = excluded.artifact_id`, workflowID, name, ref.ID, now)
		return err
	})
}

// Withdraw implements workflow.Records.
func (s *Store) Withdraw(ctx context.Context, id, status, reason string) error {
	return s.execTx(ctx, `UPDATE workflow_metadata SET status = ?, error = ?, updated_at = ? WHERE id = ?`,
		status, nullString(reason), time.Now().UTC(), id)
}

// LinkChildren implements workflow.Records, in one transaction.
func (s *Store) LinkChildren(ctx context.Context, parentID string, children []workflow.Child, at time.Time) error {
	return s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, c := range children {
			if _, err := s.execIn(ctx, tx, `INSERT INTO workflow_children (parent_id, child_id, role, workflow, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (parent_id, child_id) DO NOTHING`, parentID, c.ID, c.Role, c.Workflow, at.UTC()); err != nil {
				return err
			}
		}
		return nil
	})
}

// ChildRow is a child with its status.
type ChildRow struct {
	workflow.Child
	Status string `json:"status"`
	// Progress is what the child last published in the store, if any.
	Progress json.RawMessage `json:"progress,omitempty"`
}

// Children returns a workflow's children with their status ("" for a
// child the store has no row of yet).
func (s *Store) Children(ctx context.Context, parentID string) ([]ChildRow, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT c.child_id, c.role, c.workflow, COALESCE(m.status, ''), m.progress
FROM workflow_children c LEFT JOIN workflow_metadata m ON m.id = c.child_id WHERE c.parent_id = ? ORDER BY c.created_at, c.role`), parentID)
	if err != nil {
		return nil, transient(err)
	}
	defer rows.Close()
	var out []ChildRow
	for rows.Next() {
		var c ChildRow
		var progress sql.NullString
		if err := rows.Scan(&c.ID, &c.Role, &c.Workflow, &c.Status, &progress); err != nil {
			return nil, transient(err)
		}
		if progress.Valid {
			c.Progress = json.RawMessage(progress.String)
		}
		out = append(out, c)
	}
	return out, transient(rows.Err())
}

// Artifact returns an artifact's content by id.
func (s *Store) Artifact(ctx context.Context, id string) ([]byte, error) {
	var content []byte
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT content FROM artifacts WHERE id = ?`), id).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fault.New(fault.NotFound, "artifact %s not found", id)
	}
	return content, transient(err)
}

// NamedArtifact returns the artifact a workflow saved under name.
func (s *Store) NamedArtifact(ctx context.Context, workflowID, name string) ([]byte, error) {
	var content []byte
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT a.content FROM workflow_artifacts w JOIN artifacts a ON a.id = w.artifact_id
WHERE w.workflow_id = ? AND w.name = ?`), workflowID, name).Scan(&content)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fault.New(fault.NotFound, "workflow %s has no artifact %s", workflowID, name)
	}
	return content, transient(err)
}

// Workflow is one row of workflow_metadata: the summary a list shows, with
// the result and what the workflow last published.
type Workflow struct {
	workflow.Summary
	Output string `json:"output,omitempty"`
	// Progress is what the workflow last published in the store (see
	// workflow.Memo), if it publishes there.
	Progress json.RawMessage `json:"progress,omitempty"`
	// Waiting is the wait for a provider's limit it is in, if any:
	// "waiting for openai:gpt-4o-mini (rpm)".
	Waiting string `json:"waiting,omitempty"`
}

const workflowColumns = `id, workflow, status, input, output, error, created_at, updated_at, completed_at, duration_ms, progress, waiting`

func scanWorkflow(row interface{ Scan(...any) error }) (Workflow, error) {
	var w Workflow
	var input, output, errMsg, progress, waiting sql.NullString
	var completed sql.NullTime
	var duration sql.NullInt64
	if err := row.Scan(&w.ID, &w.Workflow, &w.Status, &input, &output, &errMsg, &w.CreatedAt, &w.UpdatedAt, &completed, &duration, &progress, &waiting); err != nil {
		return w, err
	}
	w.Input, w.Output, w.Error, w.Waiting = input.String, output.String, errMsg.String, waiting.String
	if progress.Valid {
		w.Progress = json.RawMessage(progress.String)
	}
	if completed.Valid {
		t := completed.Time
		w.CompletedAt = &t
	}
	if duration.Valid {
		d := duration.Int64
		w.DurationMS = &d
	}
	return w, nil
}

// Get returns one workflow.
func (s *Store) Get(ctx context.Context, id string) (Workflow, error) {
	w, err := scanWorkflow(s.db.QueryRowContext(ctx, s.d.rebind(`SELECT `+workflowColumns+` FROM workflow_metadata WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return w, fault.New(fault.NotFound, "workflow %s not found", id)
	}
	return w, transient(err)
}

// Filter selects workflows for List.
type Filter struct {
	Workflow string    // "" for all
	Status   string    // "" for all
	Limit    int       // 0 means 50
	Before   time.Time // if set, only those created before it (the next page)
}

// List returns workflows, newest first.
func (s *Store) List(ctx context.Context, f Filter) ([]Workflow, error) {
	q := `SELECT ` + workflowColumns + ` FROM workflow_metadata WHERE 1 = 1`
	var args []any
	if f.Workflow != "" {
		q += ` AND workflow = ?`
		args = append(args, f.Workflow)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if !f.Before.IsZero() {
		q += ` AND created_at < ?`
		args = append(args, f.Before.UTC())
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC LIMIT %d`, limit)
	rows, err := s.db.QueryContext(ctx, s.d.rebind(q), args...)
	if err != nil {
		return nil, transient(err)
	}
	defer rows.Close()
	var out []Workflow
	for rows.Next() {
		w, err := scanWorkflow(rows)
		if err != nil {
			return nil, transient(err)
		}
		out = append(out, w)
	}
	return out, transient(rows.Err())
}

// CountOpen counts the workflows that have not finished (pending,
// running, paused): what a limit on work at once counts.
func (s *Store) CountOpen(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM workflow_metadata WHERE status IN (?, ?, ?)`), workflow.StatusPending, workflow.StatusRunning, workflow.StatusPaused).Scan(&n)
	return n, transient(err)
}

// Executions returns a workflow's agent executions in step order.
func (s *Store) Executions(ctx context.Context, workflowID string) ([]workflow.Execution, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT workflow_id, agent_name, step, attempt, status, duration_ms, tokens_in, tokens_out, cost_usd, created_at
FROM agent_executions WHERE workflow_id = ? ORDER BY created_at, step`), workflowID)
	if err != nil {
		return nil, transient(err)
	}
	defer rows.Close()
	var out []workflow.Execution
	for rows.Next() {
		var e workflow.Execution
		if err := rows.Scan(&e.WorkflowID, &e.AgentName, &e.Step, &e.Attempt, &e.Status, &e.DurationMS, &e.TokensIn, &e.TokensOut, &e.CostUSD, &e.CreatedAt); err != nil {
			return nil, transient(err)
		}
		out = append(out, e)
	}
	return out, transient(rows.Err())
}

// Purged counts what Purge deleted.
type Purged struct {
	Workflows  int64 `json:"workflows"`
	Executions int64 `json:"executions"`
	Artifacts  int64 `json:"artifacts"`
}

// Purge deletes finished workflows created before cutoff, their executions
// and artifact links, and artifacts no workflow links to any more.
func (s *Store) Purge(ctx context.Context, cutoff time.Time) (Purged, error) {
	var p Purged
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return p, transient(err)
	}
	defer tx.Rollback()
	old := `SELECT id FROM workflow_metadata WHERE created_at < ? AND status IN ('completed', 'partial', 'rejected', 'failed', 'cancelled')`
	exec := func(q string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, s.d.rebind(q), args...)
		if err != nil {
			return 0, transient(err)
		}
		return res.RowsAffected()
	}
	c := cutoff.UTC()
	if p.Executions, err = exec(`DELETE FROM agent_executions WHERE workflow_id IN (`+old+`)`, c); err != nil {
		return p, err
	}
	if _, err = exec(`DELETE FROM workflow_artifacts WHERE workflow_id IN (`+old+`)`, c); err != nil {
		return p, err
	}
	if _, err = exec(`DELETE FROM workflow_children WHERE parent_id IN (`+old+`)`, c); err != nil {
		return p, err
	}
	if p.Workflows, err = exec(`DELETE FROM workflow_metadata WHERE id IN (`+old+`)`, c); err != nil {
		return p, err
	}
	if p.Artifacts, err = exec(`DELETE FROM artifacts WHERE id NOT IN (SELECT artifact_id FROM workflow_artifacts)`); err != nil {
		return p, err
	}
	return p, transient(tx.Commit())
}
