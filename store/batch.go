package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"github.com/ultramcp/durable/workflow"
)

// The workflows' writes go through one writer that commits them in
// batches: under load, every write waiting when a transaction starts joins
// it, so a hundred debates recording their rounds at once cost a few
// commits, not a hundred (SQLite takes one writer at a time anyway). A
// write returns once its batch has committed.

// maxBatch bounds the writes of one transaction.
const maxBatch = 256

// linger is how long a batch that nobody waits for stays open for more
// writes. A debate's writes come in bursts (a round's answers within a
// fraction of a millisecond, then nothing for the length of a call): a
// transaction per burst rather than per write spares SQLite most of its
// commits when the service is not busy (under load the queue is never
// empty and batches fill without waiting). A write that a workflow waits
// for (workflow.Urgent), or a Flush, closes the batch at once.
const linger = time.Millisecond

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
	// stmts are the writes' statements, prepared once on the database
	// (database/sql then prepares each once per connection and reuses it
	// in every transaction there); the writer goroutine's alone.
	stmts map[string]*sql.Stmt
}

// errClosed is a write after Close.
var errClosed = errors.New("store closed")

func (s *Store) startWriter() {
	s.w = &writer{queue: make(chan write, maxBatch), flush: make(chan struct{}, 1), quit: make(chan struct{}), stmts: map[string]*sql.Stmt{}}
	s.w.wg.Go(s.writeLoop)
}

func (s *Store) stopWriter() {
	close(s.w.quit)
	s.w.wg.Wait()
	for _, st := range s.w.stmts {
		st.Close()
	}
}

// execIn runs q in tx, the writer's transaction, as a prepared statement:
// the workflows' few writes are parsed once per connection, not on every
// call.
func (s *Store) execIn(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	st, ok := s.w.stmts[q]
	if !ok {
		var err error
		if st, err = s.db.PrepareContext(ctx, s.d.rebind(q)); err != nil {
			return nil, transient(err)
		}
		s.w.stmts[q] = st
	}
	res, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	return res, transient(err)
}

// inTx runs fn in the writer's next transaction and returns once that has
// committed (or fn failed, its savepoint undone).
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	w := write{ctx: ctx, fn: fn, done: make(chan error, 1), urgent: workflow.IsUrgent(ctx)}
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
		if !urgent && len(batch) < maxBatch {
			batch = s.lingerFor(batch)
		}
		s.commit(batch)
	}
}

// lingerFor keeps batch open for linger, or until a write someone waits
// for, a Flush, or a full batch.
func (s *Store) lingerFor(batch []write) []write {
	t := time.NewTimer(linger)
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

// Flush commits the writes waiting in an open batch now: a workflow is
// about to wait for them.
func (s *Store) Flush() {
	select {
	case s.w.flush <- struct{}{}:
	default: // a token is there already
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
