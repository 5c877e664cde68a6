package limits

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseNamesWhatIsWrong(t *testing.T) {
	got, err := Parse("openai:gpt-4o-mini concurrency=20 rpm=500 tpm=200000; anthropic rpm=50")
	if err != nil || len(got) != 2 || got[0].Concurrency != 20 || got[0].TPM != 200000 || got[1].RPM != 50 {
		t.Fatalf("%+v %v", got, err)
	}
	for bad, want := range map[string]string{
		"openai rpm=fast":            `"rpm=fast"`,
		"openai burst=3":             "the bounds are concurrency, rpm and tpm",
		"openai":                     "no bound",
		"rpm=5":                      "start with a key",
		"openai rpm=-1":              "whole number",
		"openai rpm=1; openai tpm=2": "given twice",
	} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error saying %s", bad, err, want)
		}
	}
	table := NewTable(got)
	if l, ok := table.For("openai", "gpt-4o-mini"); !ok || l.Concurrency != 20 {
		t.Errorf("the model's own limit: %+v", l)
	}
	if l, ok := table.For("openai", "gpt-4o"); !ok || l.Key != "openai" {
		t.Errorf("another model falls back to the provider's default: %+v", l)
	}
	if _, ok := table.For("offline", ""); ok {
		t.Error("the offline provider has no limit")
	}
}

// Many calls at once never exceed the concurrency, and all get through.
func TestConcurrencyHolds(t *testing.T) {
	lim := New(Table{{Key: "p", Concurrency: 3}}, NewMemory(), nil)
	defer lim.Close()
	if peak := hammer(t, []*Limiter{lim}, 40); peak > 3 || peak < 2 {
		t.Errorf("peak in flight %d, want at most 3 (and the limit used)", peak)
	}
}

// Two processes on one ledger share one limit, and both get their turns.
func TestTwoLimitersShareOneLimit(t *testing.T) {
	ledger := NewMemory()
	table := Table{{Key: "p", Concurrency: 4}}
	a, b := New(table, ledger, nil), New(table, ledger, nil)
	defer a.Close()
	defer b.Close()
	if peak := hammer(t, []*Limiter{a, b}, 60); peak > 4 || peak < 3 {
		t.Errorf("peak in flight %d across two limiters, want at most 4 (and the limit used)", peak)
	}
}

// hammer makes n calls of 2 ms through the limiters in turn, all at once,
// and returns the most in flight at any moment.
func hammer(t *testing.T, ls []*Limiter, n int) int32 {
	t.Helper()
	var inFlight, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		lim := ls[i%len(ls)]
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			release, _, err := lim.Acquire(ctx, Ask{Provider: "p", Tokens: 10})
			if err != nil {
				t.Error(err)
				return
			}
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(2 * time.Millisecond)
			inFlight.Add(-1)
			release(10, Outcome{OK: true})
		})
	}
	wg.Wait()
	return peak.Load()
}

// A 429 halves the calls at once and holds the key for its Retry-After;
// answered calls bring them back one at a time.
func TestThrottleHalvesAndCools(t *testing.T) {
	k := &KeyState{}
	l := Limit{Key: "p", Concurrency: 8}
	now := time.Now()
	if g, _ := k.Settle(l, "h", Claim{Slots: 8, Requests: 8, Tokens: 80}, Report{}, now); g.Slots != 8 || g.Why != "" {
		t.Fatalf("refused below the limit: %+v", g)
	}
	g, _ := k.Settle(l, "h", Claim{Slots: 8, Requests: 8, Tokens: 80}, Report{Throttled: 1, RetryAfter: 2 * time.Second, InUse: 7}, now)
	if g.Why != "retry-after" || g.Again != 2*time.Second || g.Requests != 0 {
		t.Errorf("after a 429: %+v", g)
	}
	if k.Allowed != 4 {
		t.Errorf("after a 429 at 8 in flight: %d allowed, want 4", k.Allowed)
	}
	k.Expire(now.Add(3 * time.Second))
	if g, _ := k.Settle(l, "h", Claim{Slots: 8, Requests: 8, Tokens: 80}, Report{Answered: 4}, now.Add(3*time.Second)); g.Slots != 5 {
		t.Errorf("4 answers later: %d slots, want 5 (one more)", g.Slots)
	}
	if u := k.Usage(l, now.Add(3*time.Second)); u.Throttled != 1 || u.Allowed != 5 {
		t.Errorf("usage %+v", u)
	}
}

// rpm and tpm bound the last minute, reserved requests that went unused
// come back, and a claim not renewed runs out.
func TestWindowAndLease(t *testing.T) {
	k := &KeyState{}
	now := time.Now()
	l := Limit{Key: "p", RPM: 2, TPM: 100}
	g, _ := k.Settle(l, "h", Claim{Requests: 3, Tokens: 30}, Report{}, now)
	if g.Requests != 2 || g.Why != "rpm" || g.Again < 60*time.Second || g.Again > 61*time.Second {
		t.Errorf("three requests of two a minute: %+v", g)
	}
	// One used, one given back: another process may make one more.
	if g, _ := k.Settle(l, "other", Claim{Requests: 2, Tokens: 10}, Report{}, now.Add(time.Second)); g.Requests != 0 {
		t.Errorf("the window is full, yet %+v", g)
	}
	k.Settle(l, "h", Claim{}, Report{Unused: Claim{Requests: 1, Tokens: 10}}, now.Add(time.Second))
	if g, _ := k.Settle(l, "other", Claim{Requests: 2, Tokens: 10}, Report{}, now.Add(time.Second)); g.Requests != 1 {
		t.Errorf("an unused request given back: %+v, want 1 granted", g)
	}
	k.Expire(now.Add(windowSpan + time.Second))
	if g, _ := k.Settle(l, "h", Claim{Requests: 2, Tokens: 10}, Report{}, now.Add(windowSpan+time.Second)); g.Requests != 2 {
		t.Errorf("a minute later the window is free again: %+v", g)
	}
	tpm := &KeyState{}
	lt := Limit{Key: "t", TPM: 100}
	if g, _ := tpm.Settle(lt, "h", Claim{Requests: 1, Tokens: 150}, Report{}, now); g.Tokens != 150 {
		t.Errorf("a call larger than the whole budget goes alone: %+v", g)
	}
	if g, _ := tpm.Settle(lt, "h2", Claim{Requests: 1, Tokens: 30}, Report{}, now); g.Tokens != 0 || g.Why != "tpm" {
		t.Errorf("150+30 tokens of 100: %+v", g)
	}
	c := &KeyState{}
	lc := Limit{Key: "c", Concurrency: 1}
	c.Settle(lc, "dead", Claim{Slots: 1}, Report{InUse: 1}, now)
	c.Expire(now.Add(Lease / 2))
	if g, _ := c.Settle(lc, "h", Claim{Slots: 1}, Report{Waiting: 1}, now.Add(Lease/2)); g.Slots != 0 {
		t.Error("a live claim was taken over")
	}
	c.Expire(now.Add(Lease + time.Second))
	if g, _ := c.Settle(lc, "h", Claim{Slots: 1}, Report{Waiting: 1}, now.Add(Lease+time.Second)); g.Slots != 1 {
		t.Error("the claim of a dead holder did not come back")
	}
}

// While another process waits, a holder learns its fair share.
func TestFairShare(t *testing.T) {
	k := &KeyState{}
	l := Limit{Key: "p", Concurrency: 8}
	now := time.Now()
	k.Settle(l, "a", Claim{Slots: 8}, Report{InUse: 8}, now)
	if g, _ := k.Settle(l, "b", Claim{Slots: 4}, Report{Waiting: 4}, now); g.Slots != 0 || g.Why != "concurrency" {
		t.Fatalf("b got %+v while a holds all", g)
	}
	if g, _ := k.Settle(l, "a", Claim{Slots: 8}, Report{InUse: 8}, now); g.Share != 4 || g.Slots != 4 {
		t.Errorf("a, with b waiting: %+v, want a share of 4", g)
	}
	if g, _ := k.Settle(l, "b", Claim{Slots: 4}, Report{Waiting: 4}, now); g.Slots != 4 {
		t.Errorf("b after a gave back: %+v", g)
	}
}

// Interactive calls waiting on a key go ahead of batch ones.
func TestInteractiveGoesFirst(t *testing.T) {
	lim := New(Table{{Key: "p", Concurrency: 1}}, NewMemory(), nil)
	defer lim.Close()
	hold, _, err := lim.Acquire(context.Background(), Ask{Provider: "p", Tokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	queued := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			p := lim.pool(lim.table[0])
			p.mu.Lock()
			got := len(p.queue)
			p.mu.Unlock()
			if got >= n {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("%d calls never queued", n)
	}
	for i, kind := range []string{"batch", "batch", "batch", "interactive", "interactive"} {
		wg.Go(func() {
			release, _, err := lim.Acquire(context.Background(), Ask{Provider: "p", Tokens: 1, Batch: kind == "batch"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, kind)
			mu.Unlock()
			release(1, Outcome{OK: true})
		})
		queued(i + 1)
	}
	hold(1, Outcome{OK: true})
	wg.Wait()
	if strings.Join(order, " ") != "interactive interactive batch batch batch" {
		t.Errorf("granted in the order %v", order)
	}
}

// A waiting run is shown waiting, once, and no longer once it has its
// permit.
func TestWaitingRunIsNoted(t *testing.T) {
	w := &notes{}
	lim := New(Table{{Key: "p", RPM: 1}}, NewMemory(), w)
	defer lim.Close()
	first, _, err := lim.Acquire(context.Background(), Ask{Provider: "p", Tokens: 1, Run: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	first(1, Outcome{OK: true})
	ctx, cancel := context.WithTimeout(context.Background(), WaitNoted+300*time.Millisecond)
	defer cancel()
	_, _, err = lim.Acquire(ctx, Ask{Provider: "p", Tokens: 1, Run: "r1"})
	if err == nil || !strings.Contains(err.Error(), "waiting for p (rpm)") {
		t.Errorf("a second call in a minute of rpm=1: %v", err)
	}
	if got := w.list(); len(got) != 2 || got[0] != "r1: waiting for p (rpm)" || got[1] != "r1: " {
		t.Errorf("notes %q", got)
	}
}

type notes struct {
	mu  sync.Mutex
	all []string
}

func (n *notes) Waiting(_ context.Context, run, note string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.all = append(n.all, run+": "+note)
	return nil
}

func (n *notes) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.all...)
}

// BenchmarkAcquireUnbound is a permit's cost when the limit never binds:
// the claim in memory serves it.
func BenchmarkAcquireUnbound(b *testing.B) {
	lim := New(Table{{Key: "p", Concurrency: 1_000_000, RPM: 100_000_000, TPM: 100_000_000}}, NewMemory(), nil)
	defer lim.Close()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, _, err := lim.Acquire(context.Background(), Ask{Provider: "p", Tokens: 100})
			if err != nil {
				b.Fatal(err)
			}
			release(100, Outcome{OK: true})
		}
	})
}
