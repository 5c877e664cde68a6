// Package limits shares the model providers' limits among every call of
// every workflow, in every service process on one store: calls at once,
// requests and tokens per minute, per key ("openai:gpt-4o-mini", or a
// provider's "openai" for all its models). A call waits for a permit
// rather than meeting a 429; a 429 still met lowers the key's calls at once
// for everyone (multiplicative decrease, additive increase back) and holds
// the key for its Retry-After. Permits are leases: one held by a process
// that died comes back when its lease runs out.
//
// The shared counts live behind Ledger: the store's tables (store.Limits)
// for a stack, memory for one process (tests, the benchmark).
package limits

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limit is what one key allows; zero means no bound of that kind.
type Limit struct {
	Key         string `json:"key"` // provider:model, or provider
	Concurrency int    `json:"concurrency,omitempty"`
	RPM         int    `json:"rpm,omitempty"`
	TPM         int    `json:"tpm,omitempty"` // input plus output tokens
}

func (l Limit) String() string { return strings.TrimSpace(l.Key + " " + l.Bounds()) }

// Bounds are l's bounds as ULTRAMCP_LIMITS spells them: "concurrency=8
// rpm=500".
func (l Limit) Bounds() string {
	var parts []string
	for _, f := range []struct {
		name string
		n    int
	}{{"concurrency", l.Concurrency}, {"rpm", l.RPM}, {"tpm", l.TPM}} {
		if f.n > 0 {
			parts = append(parts, f.name+"="+strconv.Itoa(f.n))
		}
	}
	return strings.Join(parts, " ")
}

// Defaults are the limits of a provider's first paid tier, which a key
// starts in (OpenAI's for gpt-4o-mini, Anthropic's for its models); the
// offline provider has none. ULTRAMCP_LIMITS overrides them key by key.
var Defaults = []Limit{
	{Key: "openai", Concurrency: 32, RPM: 500, TPM: 200_000},
	{Key: "anthropic", Concurrency: 8, RPM: 50, TPM: 40_000},
}

// Parse reads limits such as
// "openai:gpt-4o-mini concurrency=20 rpm=500 tpm=200000; anthropic rpm=50":
// entries apart by ";" or a new line, each a key and its bounds. An error
// names the entry and says what is wrong.
func Parse(s string) ([]Limit, error) {
	var out []Limit
	for _, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		fields := strings.Fields(entry)
		if len(fields) == 0 {
			continue
		}
		l := Limit{Key: fields[0]}
		if strings.Contains(l.Key, "=") || strings.ContainsAny(l.Key, " \t\"'") {
			return nil, fmt.Errorf("%q: start with a key (provider or provider:model), then name=value bounds", strings.TrimSpace(entry))
		}
		if len(fields) == 1 {
			return nil, fmt.Errorf("%q: no bound; give concurrency=N, rpm=N or tpm=N", l.Key)
		}
		for _, f := range fields[1:] {
			name, value, ok := strings.Cut(f, "=")
			n, err := strconv.Atoi(value)
			if !ok || err != nil || n < 0 || n > 100_000_000 {
				return nil, fmt.Errorf("%s: %q: want name=N with N a whole number from 0 to 100000000", l.Key, f)
			}
			switch name {
			case "concurrency":
				l.Concurrency = n
			case "rpm":
				l.RPM = n
			case "tpm":
				l.TPM = n
			default:
				return nil, fmt.Errorf("%s: %q: the bounds are concurrency, rpm and tpm", l.Key, name)
			}
		}
		if slices.ContainsFunc(out, func(o Limit) bool { return o.Key == l.Key }) {
			return nil, fmt.Errorf("%s: given twice", l.Key)
		}
		out = append(out, l)
	}
	return out, nil
}

// Table is the limits in force: Defaults, each overridden by a configured
// limit of the same key, and the configured ones of other keys.
type Table []Limit

// NewTable is Defaults with configured on top.
func NewTable(configured []Limit) Table {
	t := Table(slices.Clone(configured))
	for _, d := range Defaults {
		if !slices.ContainsFunc(t, func(l Limit) bool { return l.Key == d.Key }) {
			t = append(t, d)
		}
	}
	slices.SortFunc(t, func(a, b Limit) int { return strings.Compare(a.Key, b.Key) })
	return t
}

// For is the limit of a call to model of provider: the model's own, else
// the provider's; ok is false when neither has one.
func (t Table) For(provider, model string) (Limit, bool) {
	if model != "" {
		if i := slices.IndexFunc(t, func(l Limit) bool { return l.Key == provider+":"+model }); i >= 0 {
			return t[i], true
		}
	}
	i := slices.IndexFunc(t, func(l Limit) bool { return l.Key == provider })
	if i < 0 {
		return Limit{}, false
	}
	return t[i], true
}

// Lease is how long a process's claim of a key lasts unless it settles
// again (it does every Refresh while it holds any): a process that dies
// gives its permits back within it.
const Lease = 10 * time.Second
