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
	lim := New(Table{{Key: "p", Concurrency: 3}}, NewMemory())
	defer lim.Close()
	var inFlight, peak atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			release, _, err := lim.Acquire(context.Background(), "p", "", 10)
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
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak in flight %d, want at most 3 (and the limit used)", p)
	}
}

// A 429 halves the calls at once and holds the key for its Retry-After;
// answered calls bring them back one at a time.
func TestThrottleHalvesAndCools(t *testing.T) {
	m := NewMemory()
	l := Limit{Key: "p", Concurrency: 8}
	now := time.Now()
	var leases []string
	for range 8 {
		id, why, _, _ := m.Take(context.Background(), l, "h", 1, now)
		if id == "" {
			t.Fatalf("refused below the limit: %s", why)
		}
		leases = append(leases, id)
	}
	_ = m.Return(context.Background(), l, leases[0], 1, Outcome{Throttled: true, RetryAfter: 2 * time.Second}, now)
	if _, why, again, _ := m.Take(context.Background(), l, "h", 1, now.Add(time.Second)); why != "retry-after" || again != time.Second {
		t.Errorf("during Retry-After: %q %s", why, again)
	}
	for _, id := range leases[1:] {
		_ = m.Return(context.Background(), l, id, 1, Outcome{OK: true}, now)
	}
	us, _ := m.Usage(context.Background(), Table{l}, now.Add(3*time.Second))
	if us[0].Allowed < 4 || us[0].Allowed > 6 || us[0].Throttled != 1 {
		t.Errorf("after a 429 at 8 in flight and 7 answers: %+v, want about half allowed, growing back", us[0])
	}
}

// rpm and tpm bound the last minute; a lease not renewed runs out.
func TestWindowAndLease(t *testing.T) {
	m := NewMemory()
	now := time.Now()
	l := Limit{Key: "p", RPM: 2, TPM: 100}
	a, _, _, _ := m.Take(context.Background(), l, "h", 40, now)
	b, _, _, _ := m.Take(context.Background(), l, "h", 40, now)
	if a == "" || b == "" {
		t.Fatal("refused below rpm")
	}
	if _, why, again, _ := m.Take(context.Background(), l, "h", 1, now.Add(time.Second)); why != "rpm" || again < 58*time.Second || again > 59*time.Second {
		t.Errorf("third call in a minute: %q %s", why, again)
	}
	if id, _, _, _ := m.Take(context.Background(), l, "h", 1, now.Add(time.Minute+time.Second)); id == "" {
		t.Error("a minute later the window is free again")
	}
	tpm := Limit{Key: "t", TPM: 100}
	_, _, _, _ = m.Take(context.Background(), tpm, "h", 80, now)
	if _, why, _, _ := m.Take(context.Background(), tpm, "h", 30, now); why != "tpm" {
		t.Errorf("80+30 tokens of 100: %q", why)
	}
	c := Limit{Key: "c", Concurrency: 1}
	if id, _, _, _ := m.Take(context.Background(), c, "dead", 1, now); id == "" {
		t.Fatal("refused")
	}
	if id, _, _, _ := m.Take(context.Background(), c, "h", 1, now.Add(Lease/2)); id != "" {
		t.Error("a live lease was taken over")
	}
	if id, _, _, _ := m.Take(context.Background(), c, "h", 1, now.Add(Lease+time.Second)); id == "" {
		t.Error("the lease of a dead holder did not come back")
	}
}
