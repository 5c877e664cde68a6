// Package writebehind is how a workflow writes to the metadata store
// without paying the journal for it: each write is an idempotent upsert
// made in the background while the workflow goes on, retried until the
// store answers, and waited for before the workflow ends (Writes); Tracked
// records a workflow's start and end the same way; Record is the one store
// write that is a journaled step.
package writebehind

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/retry"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/workflow"
)

// RecordStep runs a store write: the engine tries it once, because the
// write retries inside itself (RetryStore) for as long as the workflow
// lives; a database outage delays a workflow, it never fails it.
var RecordStep = engine.StepOptions{MaxAttempts: 1}

// Record runs write as the store step called name: the engine tries it
// once, and write is retried inside (RetryStore) until the store answers.
func Record[T any](c engine.Context, name string, write func(ctx context.Context) (T, error)) (T, error) {
	return engine.Run(c, name, RecordStep, func(ctx context.Context) (T, error) {
		var out T
		err := RetryStore(ctx, func(ctx context.Context) (err error) {
			out, err = write(ctx)
			return err
		})
		return out, err
	})
}

// Tracked wraps a workflow body so that the store sees it start ("running")
// and end ("completed", "failed" with the reason, or "cancelled"). With rec
// nil it returns body unchanged.
//
// Neither write is a journaled step: each is an idempotent write that
// every attempt makes again — the start keeps a finished row as it is and
// its first start time, the end writes the same outcome — so a replay
// rewrites the same row, and a workflow pays no journal entry and no round
// trip to Restate for its own bookkeeping. The end is written before the
// output reaches the journal: a crash between the two replays the body from
// the journal (no step runs again) and writes the end again. A store that
// does not answer delays the workflow (RetryStore); it never fails it.
func Tracked[I, O any](rec workflow.Records, name string, body func(engine.Context, I) (O, error)) func(engine.Context, I) (O, error) {
	if rec == nil {
		return body
	}
	return func(c engine.Context, in I) (O, error) {
		var zero O
		input, err := encode(in)
		if err != nil {
			return zero, fault.Wrap(fault.Internal, err, "encode input")
		}
		// A refused request is recorded too: a credential it carried in a
		// URL is not.
		input = []byte(sanitize.URLCredentials(string(input)))
		// The start, the body's writes and the end are written in the
		// background and committed together where they meet; the output
		// reaches the journal only once all have landed.
		writes := NewWrites(c, rec)
		writes.tracked, writes.name = true, name
		at := time.Now().UTC()
		writes.start(func(ctx context.Context) error { return rec.Started(ctx, c.WorkflowID(), name, input, at) })
		out, runErr := body(trackedContext{c, writes}, in)
		var output []byte
		if runErr == nil {
			if output, err = encode(out); err != nil {
				return zero, writes.Wait(fault.Wrap(fault.Internal, err, "encode output"))
			}
		}
		status, msg := workflow.EndedAs(output, runErr)
		if runErr != nil || !writes.endedAhead() {
			writes.end(status, msg, output)
		}
		if err := writes.Wait(nil); err != nil && runErr == nil {
			return zero, err
		}
		return out, runErr
	}
}

// encode is v's JSON; a body's input and output are that already (the
// engines pass json.RawMessage that the SDK or the body encoded), and are
// not parsed again to be copied.
func encode(v any) ([]byte, error) {
	if raw, ok := v.(json.RawMessage); ok && len(raw) > 0 {
		return raw, nil
	}
	return json.Marshal(v)
}

// StoreRetryCap is the longest wait between two attempts of a store write;
// the service sets it once from ULTRAMCP_STORE_RETRY_CAP.
var StoreRetryCap = 5 * time.Second

// RetryStore runs write until it succeeds or fails with a fault that
// retrying cannot fix, backing off from 200 ms to StoreRetryCap, for as
// long as ctx lives: there is no budget to run out, because giving up would
// throw away the paid work of the workflow it records. Each outage is
// logged when it starts, every tenth attempt, and when it ends.
func RetryStore(ctx context.Context, write func(context.Context) error) error {
	var since time.Time
	// No attempt budget: giving up would throw away paid work; the cap
	// keeps a store that is back from waiting long to be noticed.
	policy := retry.Policy{Initial: 200 * time.Millisecond, Max: max(StoreRetryCap, time.Millisecond), Cause: "store",
		OnRetry: func(attempt int, err error) {
			if since.IsZero() {
				since = time.Now()
			}
			if attempt == 1 || attempt%10 == 0 {
				slog.Warn("metadata store unreachable; the write waits for it", "attempt", attempt, "for", time.Since(since).Round(time.Second).String(), "err", err)
			}
		}}
	attempts, err := policy.Do(ctx, write)
	switch {
	case err == nil && !since.IsZero():
		slog.Info("metadata store reachable again", "after", time.Since(since).Round(time.Millisecond).String(), "attempts", attempts)
	case fault.IsRetryable(err) && ctx.Err() != nil:
		return fault.Wrap(fault.Unavailable, ctx.Err(), "store write abandoned")
	}
	return err
}

// Writes are a workflow's store writes of what its journal holds or is
// about to hold (the rows of answered calls, with their answers when a step
// makes several calls; progress; a transcript; the end): made in the
// background while the workflow goes on, outside the journal, so the store
// adds no journal entry and no round trip to Restate. Each is an idempotent
// upsert that a replay makes again, so a crash before it lands loses
// nothing that the journal or a retried step does not make again; each
// retries until the store answers (RetryStore), so an outage delays the
// workflow's end, never a model call. Wait before the workflow ends.
type Writes struct {
	c   engine.Context
	rec workflow.Records
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
	// tracked: the Tracked wrapper waits for these writes, after adding
	// the workflow's end; name is the workflow's.
	tracked bool
	name    string
	// landed are closed as the writes, in the order started, finish.
	landed []chan struct{}
	// waiting is set once the workflow waits for all its writes: the
	// writes made from then on are urgent, and a store that batches
	// commits them at once (workflow.Deferring).
	waiting atomic.Bool
	// to is where the writes go: rec, or its deferred view when it
	// batches (urgent once waiting).
	to workflow.Records
	// ended is set once a Tracked workflow's end was written ahead
	// (Ending).
	ended bool
}

// Ending writes the workflow's end now, with the output its body will
// return, when its last step already knows it: the end then lands while
// that step is journaled rather than after. It is a promise: a body that
// calls it returns that output, or fails (Tracked then writes the failure
// over it); a crash before the body returns replays the step and comes to
// the same output. Outside Tracked it does nothing.
func (w *Writes) Ending(output []byte) {
	if !w.tracked {
		return
	}
	w.mu.Lock()
	w.ended = true
	w.mu.Unlock()
	status, msg := workflow.FinishedAs(output)
	w.end(status, msg, output)
}

// end records how a Tracked workflow ended. It waits for the start (the
// row it updates) and nothing else.
func (w *Writes) end(status, msg string, output []byte) {
	at := time.Now().UTC()
	w.after(func(ctx context.Context) error {
		return w.to.Finished(ctx, w.c.WorkflowID(), w.name, status, output, msg, at)
	})
}

func (w *Writes) endedAhead() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ended
}

// NewWrites returns the writes of c to rec; with rec nil they do nothing.
// Inside a Tracked body they are the tracking's own, so that the body's
// last writes and the workflow's end are committed together.
func NewWrites(c engine.Context, rec workflow.Records) *Writes {
	if t, ok := c.(trackedContext); ok && t.writes.rec == rec {
		return t.writes
	}
	w := &Writes{c: c, rec: rec, to: rec}
	if d, ok := rec.(workflow.Deferring); ok {
		w.to = d.Deferred(w.waiting.Load)
	}
	return w
}

// trackedContext is the context a Tracked body runs in: its writes are the
// tracking's.
type trackedContext struct {
	engineContext
	writes *Writes
}

// engineContext names the embedded context so that its Context method is
// promoted.
type engineContext = engine.Context

func (w *Writes) start(write func(ctx context.Context) error) {
	w.startIn(w.c.Context(), write, nil)
}

// startIn is start under ctx; release, if set, runs once the write is over.
func (w *Writes) startIn(ctx context.Context, write func(ctx context.Context) error, release func()) {
	if w.rec == nil {
		return
	}
	landed := make(chan struct{})
	w.mu.Lock()
	w.landed = append(w.landed, landed)
	w.mu.Unlock()
	w.wg.Go(func() {
		defer close(landed)
		if release != nil {
			defer release()
		}
		if err := RetryStore(ctx, write); err != nil {
			w.mu.Lock()
			w.err = cmp.Or(w.err, err)
			w.mu.Unlock()
		}
	})
}

// after writes once the first write (a workflow's start) has landed,
// beside the others.
func (w *Writes) after(write func(ctx context.Context) error) {
	w.mu.Lock()
	var first chan struct{}
	if len(w.landed) > 0 {
		first = w.landed[0]
	}
	w.mu.Unlock()
	w.start(func(ctx context.Context) error {
		if first != nil {
			select {
			case <-first:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return write(ctx)
	})
}

// Rows records agent calls.
func (w *Writes) Rows(execs []workflow.Execution) {
	if len(execs) > 0 {
		w.start(func(ctx context.Context) error { return w.to.RecordExecutions(ctx, execs) })
	}
}

// AnsweredGrace is how long the rows of answered calls keep trying to land
// after their run stopped (cancelled, or its engine gone).
const AnsweredGrace = 2 * time.Minute

// Answered records calls that have just answered, with their answers (see
// workflow.Memo), from inside the step that made them. The calls were paid for, and
// a retry of the step reuses their answers: the write goes on for
// AnsweredGrace after the run itself stops.
func (w *Writes) Answered(execs []workflow.Execution) {
	if len(execs) == 0 || w.rec == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(w.c.Context()))
	stop := context.AfterFunc(w.c.Context(), func() { time.AfterFunc(AnsweredGrace, cancel) })
	w.startIn(ctx, func(ctx context.Context) error { return w.to.RecordExecutions(ctx, execs) }, func() { stop(); cancel() })
}

// Memo is the store as a workflow.Memo, or nil when it keeps no answers.
func (w *Writes) Memo() workflow.Memo {
	m, _ := w.to.(workflow.Memo)
	return m
}

// Progress publishes v in the store (see workflow.Memo) once the workflow's start
// has landed; seq orders the publications.
func (w *Writes) Progress(seq int, v any) error {
	m := w.Memo()
	if m == nil {
		return fault.New(fault.Internal, "the store keeps no progress")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "encode progress")
	}
	w.after(func(ctx context.Context) error { return m.Progress(ctx, w.c.WorkflowID(), seq, b) })
	return nil
}

// Publish makes v the workflow's progress, in its one home: the store when
// it keeps progress (no journal entry), else the engine's state (a
// workflow without a store). seq orders the store's publications; a body
// publishes in the same order on every replay. It is not for use inside a
// step, where the engine's state cannot be written (Progress is).
func (w *Writes) Publish(seq int, v any) error {
	if w.Memo() != nil {
		return w.Progress(seq, v)
	}
	return w.c.Publish(workflow.ProgressKey, v)
}

// Artifact keeps content under name and returns its reference at once.
func (w *Writes) Artifact(name string, content []byte) workflow.ArtifactRef {
	w.start(func(ctx context.Context) error {
		_, err := w.to.PutArtifact(ctx, w.c.WorkflowID(), name, content)
		return err
	})
	return workflow.RefOf(name, content)
}

// flush asks the store to commit the writes it holds back, because the
// workflow waits for them.
func (w *Writes) flush() {
	if f, ok := w.rec.(workflow.Flusher); ok {
		f.Flush()
	}
}

// Mark is how many writes have been started: a point to WaitFor later.
func (w *Writes) Mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.landed)
}

// WaitFor waits for the first n writes and returns the first failure for
// good among all: a workflow lets its store writes lag behind its steps by
// a bounded amount, so that a store that is down stops it from spending
// further ahead.
func (w *Writes) WaitFor(n int) error {
	w.mu.Lock()
	first := w.landed[:min(n, len(w.landed))]
	w.mu.Unlock()
	for _, c := range first {
		select {
		case <-c:
		default:
			w.flush()
			<-c
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Done is what a body calls when it returns: it waits for the writes and
// returns cause if not nil, else the first write that failed for good —
// unless the writes are a Tracked body's, which Tracked waits for beside
// the workflow's end.
func (w *Writes) Done(cause error) error {
	if w.tracked {
		return cause
	}
	return w.Wait(cause)
}

// Wait waits for every write and returns cause if not nil, else the first
// write that failed for good.
func (w *Writes) Wait(cause error) error {
	// What is written from now on is waited for, and so is what the store
	// holds back.
	w.waiting.Store(true)
	w.flush()
	w.wg.Wait()
	if cause != nil {
		return cause
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
