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
		l := limits.New(table, s.Limits(), s)
		limiters = append(limiters, l)
	}
	var inFlight, peak, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			release, _, err := limiters[i%2].Acquire(ctx, limits.Ask{Provider: "openai", Model: "gpt-4o-mini", Tokens: 100})
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
	for _, l := range limiters {
		l.Close() // gives back what was reserved and not used
	}
	if p := peak.Load(); p > 4 || done.Load() != 60 {
		t.Errorf("peak %d in flight (limit 4), %d of 60 done", p, done.Load())
	}
	us, err := stores[0].Limits().Usage(ctx, table, time.Now())
	if err != nil || len(us) != 1 || us[0].Requests != 60 || us[0].Tokens != 60*120 || us[0].InFlight != 0 {
		t.Errorf("usage after: %+v %v", us, err)
	}
}

// The store's ledger decides as the memory's does (the same
// limits.KeyState), keeps it between settles, and gives a dead holder's
// claim back once its lease ran out.
func TestStoreLedgerClaims(t *testing.T) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			l := limits.Limit{Key: "k-" + name, Concurrency: 1, RPM: 3}
			now := time.Now()
			g, err := s.Limits().Settle(ctx, l, "dead", limits.Claim{Slots: 1, Requests: 2, Tokens: 10}, limits.Report{InUse: 1}, now)
			if err != nil || g.Slots != 1 || g.Requests != 2 {
				t.Fatalf("first claim: %+v %v", g, err)
			}
			if g, _ := s.Limits().Settle(ctx, l, "live", limits.Claim{Slots: 1, Requests: 2, Tokens: 10}, limits.Report{Waiting: 1}, now.Add(time.Second)); g.Slots != 0 || g.Requests != 1 || g.Why != "concurrency" {
				t.Errorf("at concurrency 1 and rpm 3, two reserved: %+v", g)
			}
			if g, _ := s.Limits().Settle(ctx, l, "live", limits.Claim{Slots: 1, Requests: 1, Tokens: 10}, limits.Report{Waiting: 1}, now.Add(limits.Lease+2*time.Second)); g.Slots != 1 {
				t.Errorf("the dead holder's claim did not come back: %+v", g)
			}
			if _, err := s.Limits().Settle(ctx, l, "live", limits.Claim{Slots: 1}, limits.Report{Throttled: 1, RetryAfter: 3 * time.Second, InUse: 1}, now.Add(limits.Lease+2*time.Second)); err != nil {
				t.Fatal(err)
			}
			if g, _ := s.Limits().Settle(ctx, l, "live", limits.Claim{Slots: 1, Requests: 1}, limits.Report{InUse: 1}, now.Add(limits.Lease+3*time.Second)); g.Why != "retry-after" {
				t.Errorf("during a Retry-After: %+v", g)
			}
			us, err := s.Limits().Usage(ctx, limits.Table{l}, now.Add(limits.Lease+3*time.Second))
			if err != nil || us[0].Throttled != 1 || us[0].CoolingUntil.IsZero() || us[0].InFlight != 1 {
				t.Errorf("usage %+v %v", us, err)
			}
		})
	}
}
