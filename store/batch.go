package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
)

// The workflows' writes go through one writer that commits them in
// batches: under load, every write waiting when a transaction starts joins
// it, so a hundred debates recording their rounds at once cost a few
// commits, not a hundred (SQLite takes one writer at a time anyway). A
// write returns once its batch has committed.

// maxBatch bounds the writes of one transaction.
const maxBatch = 256

// A batch that nobody waits for stays open for more writes for the
// dialect's linger. A debate's writes come in bursts (a round's answers
// within a fraction of a millisecond, then nothing for the length of a
// call): on SQLite a transaction per burst rather than per write spares
// most of its commits, each a write of pages to the WAL, when the service
// is not busy. A write that a workflow waits for (Store.Deferred), or a
// Flush, closes the batch at once. On PostgreSQL, where a commit is a
// round trip, two writers also run side by side.

// batchTimeout bounds one batch's transaction.
const batchTimeout = 30 * time.Second

// write is one write waiting for its batch.
type write struct {
	ctx    context.Context
	fn     func(ctx context.Context, tx *sql.Tx) error
	done   chan error
	urgent bool // someone waits for it: no lingering
}

type writer struct {
	queue chan write
	flush chan struct{} // a token ends the lingering batch
	quit  chan struct{}
	wg    sync.WaitGroup
}

// errClosed is a write after Close.
var errClosed = errors.New("store closed")

// startWriter starts the dialect's writers: one for SQLite, which takes one
// writer at a time anyway; several for PostgreSQL, where a transaction is a
// few round trips to the server and one writer would leave it idle while
// the next batch waits.
func (s *Store) startWriter() {
	s.w = &writer{queue: make(chan write, maxBatch), flush: make(chan struct{}, max(s.d.writers, 1)), quit: make(chan struct{})}
	for range max(s.d.writers, 1) {
		s.w.wg.Go(s.writeLoop)
	}
}

func (s *Store) stopWriter() {
	close(s.w.quit)
	s.w.wg.Wait()
}

// execIn runs q in tx, a writer's transaction, as a prepared statement:
// the workflows' few writes are parsed once per connection (database/sql
// prepares a statement of the database once on each), not on every call.
func (s *Store) execIn(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	return res, transient(err)
}

// inTx runs fn in the writer's next transaction and returns once that has
// committed (or fn failed, its savepoint undone).
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if tx, ok := ctx.Value(warmTx{}).(*sql.Tx); ok {
		return fn(ctx, tx) // Warm's transaction, rolled back
	}
	// The span of the write as its workflow sees it: queued, batched and
	// committed.
	start := time.Now()
	err := s.queued(ctx, fn)
	if telemetry.On() {
		// An event of the span the write is made under (a step's, a
		// run's), with how long it took, rather than a span of its own:
		// a debate makes some 15 writes, which as spans were half of its
		// spans and most of what tracing it cost.
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			attrs := []attribute.KeyValue{attribute.String("db.system.name", s.Dialect()), telemetry.StoreWriteMS.Float64(float64(time.Since(start).Microseconds()) / 1000)}
			if err != nil {
				attrs = append(attrs, attribute.String("error", sanitize.FirstLine(err.Error(), 300)))
			}
			span.AddEvent("store write", trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		}
	}
	return err
}

// queued hands fn to the writer and waits for its transaction.
func (s *Store) queued(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	w := write{ctx: ctx, fn: fn, done: make(chan error, 1), urgent: s.isUrgent()}
	select {
	case s.w.queue <- w:
	case <-s.w.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		// The write may still land: it is an idempotent upsert, so the
		// caller's retry writes the same row.
		return ctx.Err()
	}
}

func (s *Store) writeLoop() {
	for {
		var first write
		select {
		case first = <-s.w.queue:
		case <-s.w.quit:
			return
		}
		batch := []write{first}
		urgent := first.urgent
	collect:
		for len(batch) < maxBatch {
			select {
			case w := <-s.w.queue:
				batch = append(batch, w)
				urgent = urgent || w.urgent
			default:
				break collect
			}
		}
		if !urgent && len(batch) < maxBatch && s.d.linger > 0 {
			batch = s.lingerFor(batch)
		}
		s.commit(batch)
	}
}

// lingerFor keeps batch open for the dialect's linger, or until a write
// someone waits for, a Flush, or a full batch.
func (s *Store) lingerFor(batch []write) []write {
	t := time.NewTimer(s.d.linger)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case w := <-s.w.queue:
			batch = append(batch, w)
			if w.urgent {
				return batch
			}
		case <-s.w.flush:
			return batch
		case <-t.C:
			return batch
		case <-s.w.quit:
			return batch
		}
	}
	return batch
}

// warmTx carries Warm's transaction to the writes it makes.
type warmTx struct{}

// Warm opens a connection for each writer and prepares on it every
// statement a workflow makes, by making each write once in a transaction
// that is rolled back: so that the first workflow after the service
// starts costs what the next ones do, not a connection and a dozen
// statements parsed (PostgreSQL: each a round trip).
func (s *Store) Warm(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, max(s.d.writers, 1))
	for i := range errs {
		wg.Go(func() {
			tx, err := s.db.BeginTx(ctx, nil)
			if err != nil {
				errs[i] = transient(err)
				return
			}
			defer tx.Rollback()
			wctx := context.WithValue(ctx, warmTx{}, tx)
			const id = "ultramcp-warm-up"
			at := time.Now().UTC()
			errs[i] = errors.Join(
				s.Started(wctx, id, "warm-up", []byte("{}"), at),
				s.RecordExecutions(wctx, []workflow.Execution{{WorkflowID: id, AgentName: "warm-up", Step: "warm-up", Status: workflow.StatusCompleted, CreatedAt: at, RunID: id, Answer: []byte("{}")}}),
				s.Progress(wctx, id, 1, []byte("{}")),
				func() error { _, err := s.PutArtifact(wctx, id, "warm-up", []byte(id)); return err }(),
				s.Finished(wctx, id, "warm-up", workflow.StatusCompleted, []byte("{}"), "", at),
			)
		})
	}
	wg.Wait()
	_, err := s.Answers(ctx, "ultramcp-warm-up", "ultramcp-warm-up")
	return errors.Join(append(errs, err)...)
}

// Flush commits the writes waiting in open batches now: a workflow is
// about to wait for them. There is a token for each writer.
func (s *Store) Flush() {
	for range cap(s.w.flush) {
		select {
		case s.w.flush <- struct{}{}:
		default: // the tokens are there already
			return
		}
	}
}

// commit runs a batch in one transaction. If a write fails, the batch is
// undone and each write runs again in a transaction of its own, so that
// one write's failure is its own and every write stays whole.
func (s *Store) commit(batch []write) {
	if len(batch) > 1 {
		if err := s.runTx(batch); err == nil {
			for _, w := range batch {
				w.done <- nil
			}
			return
		}
	}
	for _, w := range batch {
		w.done <- s.runTx([]write{w})
	}
}

// runTx runs writes in one transaction, bounded by batchTimeout (a
// database that hangs rather than refuses gives an error to retry on, not
// a wait forever), and commits them all or none.
func (s *Store) runTx(batch []write) error {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		telemetry.StoreWrite.Observe(telemetry.Since(start))
		telemetry.StoreBatch.Observe(float64(len(batch)))
	}()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return transient(err)
	}
	defer tx.Rollback()
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := w.fn(ctx, tx); err != nil {
			return err
		}
	}
	return transient(tx.Commit())
}
