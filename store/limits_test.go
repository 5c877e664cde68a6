package store_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ultramcp/durable/limits"
	"github.com/ultramcp/durable/store"
)

// Two stores on one SQLite file, as two service processes are, share one
// limit: calls at once never pass it, and every call gets through.
func TestTwoProcessesShareOneLimit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	var limiters []*limits.Limiter
	var stores []*store.Store
	table := limits.Table{{Key: "openai", Concurrency: 4, RPM: 10_000}}
	for range 2 {
		s, err := store.Open(ctx, "", path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
		l := limits.New(table, s.Limits())
		defer l.Close()
		limiters = append(limiters, l)
	}
	var inFlight, peak, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			release, _, err := limiters[i%2].Acquire(ctx, "openai", "gpt-4o-mini", 100)
			if err != nil {
				t.Error(err)
				return
			}
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(5 * time.Millisecond)
			inFlight.Add(-1)
			release(120, limits.Outcome{OK: true})
			done.Add(1)
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 4 || done.Load() != 60 {
		t.Errorf("peak %d in flight (limit 4), %d of 60 done", p, done.Load())
	}
	us, err := stores[0].Limits().Usage(ctx, table, time.Now())
	if err != nil || len(us) != 1 || us[0].Requests != 60 || us[0].Tokens != 60*120 || us[0].InFlight != 0 {
		t.Errorf("usage after: %+v %v", us, err)
	}
}

// The store's ledger refuses as the memory's does, and gives a dead
// holder's permit back once its lease ran out.
func TestStoreLedgerLeases(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := limits.Limit{Key: "k-" + name, Concurrency: 1, RPM: 100}
			now := time.Now()
			first, _, _, err := s.Limits().Take(ctx, l, "dead", 10, now)
			if err != nil || first == "" {
				t.Fatalf("first permit: %q %v", first, err)
			}
			if id, why, _, _ := s.Limits().Take(ctx, l, "live", 10, now.Add(time.Second)); id != "" || why != "concurrency" {
				t.Errorf("second permit at concurrency 1: %q %q", id, why)
			}
			if id, _, _, _ := s.Limits().Take(ctx, l, "live", 10, now.Add(limits.Lease+time.Second)); id == "" {
				t.Error("the dead holder's lease did not come back")
			}
			if err := s.Limits().Return(ctx, l, first, 10, limits.Outcome{Throttled: true, RetryAfter: 3 * time.Second}, now.Add(limits.Lease+time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, why, _, _ := s.Limits().Take(ctx, l, "live", 10, now.Add(limits.Lease+2*time.Second)); why != "retry-after" {
				t.Errorf("during a Retry-After: %q", why)
			}
		})
	}
}
