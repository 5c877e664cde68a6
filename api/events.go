package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ultramcp/durable/runs"
)

// feeds are the event logs of the workflows being read: one watch per
// workflow however many readers it has, so readers cost the workflow
// nothing and each other little. A log lives while it is read and a
// minute after, so a reader that reconnects resumes from it.
type feeds struct {
	ctx  context.Context
	runs *runs.Service
	mu   sync.Mutex
	m    map[string]*feed
}

// feed is one workflow's events so far.
type feed struct {
	epoch   string // ids are epoch-seq: a resumed id of another log is not this one's
	ctx     context.Context
	stop    context.CancelFunc // ends the watch and forgets the feed
	mu      sync.Mutex
	events  []runs.Event
	done    bool
	changed chan struct{} // closed and replaced on every change
	readers int
	idle    *time.Timer // armed when the last reader leaves
}

// FeedLinger is how long a feed outlives its last reader.
const FeedLinger = time.Minute

func newFeeds(ctx context.Context, svc *runs.Service) *feeds {
	return &feeds{ctx: ctx, runs: svc, m: map[string]*feed{}}
}

// join returns the feed of id, starting its watch, with one more reader.
func (fs *feeds) join(id string) *feed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f, ok := fs.m[id]
	if !ok || f.ctx.Err() != nil {
		ctx, stop := context.WithCancel(fs.ctx)
		f = &feed{epoch: strconv.FormatInt(time.Now().UnixNano(), 36), ctx: ctx, stop: stop, changed: make(chan struct{})}
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

// leave drops a reader; the last one to leave gives the feed FeedLinger
// to be joined again, for a reader that reconnects.
func (f *feed) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readers--; f.readers == 0 {
		f.idle = time.AfterFunc(FeedLinger, f.stop)
	}
}

func (f *feed) add(e runs.Event, done bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	f.done = f.done || done
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *feed) ended() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

// since returns the events after the first n, whether the log is done, and
// what to wait on for more.
func (f *feed) since(n int) ([]runs.Event, bool, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events[min(n, len(f.events)):], f.done, f.changed
}

// watch fills f until the workflow ends, then keeps it for readers until
// the feed is stopped (nobody read it for FeedLinger, or the API stops).
func (fs *feeds) watch(id string, f *feed) {
	_, err := fs.runs.Watch(f.ctx, id, runs.DefaultWatchInterval, func(e runs.Event) {
		f.add(e, e.Type == runs.EventResult || e.Type == runs.EventFailed)
	})
	if err != nil && f.ctx.Err() == nil && !f.ended() {
		// The watch itself failed (the workflow vanished): readers are told
		// rather than left waiting.
		f.add(runs.Event{Type: runs.EventFailed, ID: id, Error: err.Error(), At: time.Now().UTC()}, true)
	}
	<-f.ctx.Done()
	fs.mu.Lock()
	if fs.m[id] == f {
		delete(fs.m, id)
	}
	fs.mu.Unlock()
}

// events streams a workflow's events: `id: epoch-seq`, `event: type`,
// `data: JSON`. A reader that sends Last-Event-ID gets what followed it;
// one whose id is of a log gone (the API restarted) gets the log anew,
// which starts with the workflow's current state.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.runs.Status(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, fmt.Errorf("streaming unsupported"))
		return
	}
	f := s.feeds.join(id)
	defer f.leave()
	next := 0
	if epoch, seq, ok := strings.Cut(r.Header.Get("Last-Event-ID"), "-"); ok && epoch == f.epoch {
		if n, err := strconv.Atoi(seq); err == nil && n > 0 {
			next = n
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		events, done, changed := f.since(next)
		for _, e := range events {
			next++
			data, _ := json.Marshal(e)
			if _, err := fmt.Fprintf(w, "id: %s-%d\nevent: %s\ndata: %s\n\n", f.epoch, next, e.Type, data); err != nil {
				return
			}
		}
		flusher.Flush()
		if done && len(events) == 0 {
			return
		}
		if done {
			continue // send what is left, then end
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
