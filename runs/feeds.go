package runs

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Feeds are the event logs of the workflows being followed: one watch per
// workflow however many readers it has (the API's event streams, MCP's
// wait_for_result), so readers cost the workflow nothing and each other
// little. A log lives while it is read and a minute after, so a reader
// that reconnects resumes from it.
type Feeds struct {
	ctx  context.Context
	runs *Service
	mu   sync.Mutex
	m    map[string]*Feed
}

// Feed is one workflow's events so far.
type Feed struct {
	epoch   string // ids are epoch-seq: a resumed id of another log is not this one's
	ctx     context.Context
	stop    context.CancelFunc // ends the watch and forgets the feed
	mu      sync.Mutex
	events  []Event
	done    bool
	changed chan struct{} // closed and replaced on every change
	readers int
	idle    *time.Timer // armed when the last reader leaves
}

// FeedLinger is how long a feed outlives its last reader.
const FeedLinger = time.Minute

// NewFeeds returns the feeds of svc's workflows, kept while ctx lives.
func NewFeeds(ctx context.Context, svc *Service) *Feeds {
	return &Feeds{ctx: ctx, runs: svc, m: map[string]*Feed{}}
}

// Join returns the feed of id, starting its watch, with one more reader;
// the reader calls Leave when done.
func (fs *Feeds) Join(id string) *Feed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f, ok := fs.m[id]
	if !ok || f.ctx.Err() != nil {
		ctx, stop := context.WithCancel(fs.ctx)
		f = &Feed{epoch: strconv.FormatInt(time.Now().UnixNano(), 36), ctx: ctx, stop: stop, changed: make(chan struct{})}
		fs.m[id] = f
		go fs.watch(id, f)
	}
	f.mu.Lock()
	f.readers++
	if f.idle != nil {
		f.idle.Stop()
		f.idle = nil
	}
	f.mu.Unlock()
	return f
}

// Leave drops a reader; the last one to leave gives the feed FeedLinger
// to be joined again, for a reader that reconnects.
func (f *Feed) Leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readers--; f.readers == 0 {
		f.idle = time.AfterFunc(FeedLinger, f.stop)
	}
}

func (f *Feed) add(e Event, done bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	f.done = f.done || done
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Feed) ended() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

// Epoch names this log: an event id of another log (one the API kept
// before it restarted) is not this one's.
func (f *Feed) Epoch() string { return f.epoch }

// Since returns the events after the first n, whether the log is done,
// and what to wait on for more.
func (f *Feed) Since(n int) ([]Event, bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events[min(n, len(f.events)):], f.done, f.changed
}

// watch fills f until the workflow ends, then keeps it for readers until
// the feed is stopped (nobody read it for FeedLinger, or the API stops).
func (fs *Feeds) watch(id string, f *Feed) {
	_, err := fs.runs.Watch(f.ctx, id, DefaultWatchInterval, func(e Event) {
		f.add(e, e.Type == EventResult || e.Type == EventFailed)
	})
	if err != nil && f.ctx.Err() == nil && !f.ended() {
		// The watch itself failed (the workflow vanished): readers are told
		// rather than left waiting.
		f.add(Event{Type: EventFailed, ID: id, Error: err.Error(), At: time.Now().UTC()}, true)
		// Not kept for later readers: the workflow may start after this.
		f.stop()
	}
	<-f.ctx.Done()
	fs.mu.Lock()
	if fs.m[id] == f {
		delete(fs.m, id)
	}
	fs.mu.Unlock()
}
