package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ultramcp/durable/live"
)

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
	f := s.feeds.Join(id)
	defer f.Leave()
	next := 0
	if epoch, seq, ok := strings.Cut(r.Header.Get("Last-Event-ID"), "-"); ok && epoch == f.Epoch() {
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
	// The answers as they are written come between the events, without an
	// id: a reader that reconnects gets the events it missed, not the
	// tokens (a call's whole answer is in the round's event).
	var tokens <-chan live.Token
	if s.runs.Live != nil {
		var stop func()
		tokens, stop = s.runs.Live.Subscribe(id)
		defer stop()
	}
	for {
		events, done, changed := f.Since(next)
		for _, e := range events {
			next++
			data, _ := json.Marshal(e)
			if _, err := fmt.Fprintf(w, "id: %s-%d\nevent: %s\ndata: %s\n\n", f.Epoch(), next, e.Type, data); err != nil {
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
		case t := <-tokens:
			data, _ := json.Marshal(t)
			if _, err := fmt.Fprintf(w, "event: token\ndata: %s\n\n", data); err != nil {
				return
			}
			flusher.Flush()
			continue
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
