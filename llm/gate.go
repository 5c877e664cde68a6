package llm

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/limits"
)

// Gate hands out the permits of calls under the providers' limits: a
// *limits.Limiter, plugged in by llm/providers. Acquire waits for one, and
// the function it returns gives it back with the tokens used and how the
// call went.
type Gate interface {
	Acquire(ctx context.Context, a limits.Ask) (release limits.Release, waited time.Duration, err error)
}

var _ Gate = (*limits.Limiter)(nil)

// throttled is a provider's 429 (or 503) with the wait it asked for.
type throttled struct {
	error
	after time.Duration
}

func (t *throttled) Unwrap() error { return t.error }

// ClassifyResponse is ClassifyStatus with the response's headers: a 429,
// or a 503 that says Retry-After, carries that wait (RetryAfterOf).
func ClassifyResponse(provider string, status int, msg string, header http.Header) error {
	err := ClassifyStatus(provider, status, msg)
	if status != http.StatusTooManyRequests && (status != http.StatusServiceUnavailable || header.Get("Retry-After") == "") {
		return err
	}
	return &throttled{error: err, after: retryAfter(header, time.Now())}
}

// retryAfter reads Retry-After in seconds or as an HTTP date; 0 when it
// says neither (or is past). A wait over ten minutes is cut to ten.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseFloat(v, 64); err == nil && n > 0 {
		d = time.Duration(n * float64(time.Second))
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), 10*time.Minute)
}

// RetryAfterOf is the wait a throttled call was told to keep, and whether
// it was throttled.
func RetryAfterOf(err error) (time.Duration, bool) {
	var t *throttled
	if errors.As(err, &t) {
		return t.after, true
	}
	return 0, false
}

// outcomeOf is how a call went, for its permit.
func outcomeOf(err error) limits.Outcome {
	if err == nil {
		return limits.Outcome{OK: true}
	}
	if after, ok := RetryAfterOf(err); ok {
		return limits.Outcome{Throttled: true, RetryAfter: after}
	}
	return limits.Outcome{}
}

// askOf is req's request for a permit: the run it is for is its label's
// first part ("debate-1/round-2/alice").
func askOf(provider string, req Request, tokens int) limits.Ask {
	run, _, _ := strings.Cut(req.Label, "/")
	return limits.Ask{Provider: provider, Model: req.Model, Tokens: tokens, Batch: req.Batch, Run: run}
}

// Estimate is a call's tokens before it is made: its text at four bytes a
// token in, and out the answer it may write (MaxTokens, else 500).
func Estimate(req Request) (in, out int) {
	n := len(req.System)
	for _, m := range req.Messages {
		n += len(m.Content)
	}
	out = req.MaxTokens
	if out <= 0 {
		out = 500
	}
	return n / 4, out
}

func estimate(req Request) int {
	in, out := Estimate(req)
	return in + out
}

// waitFor bounds a permit's wait: past it a call fails as unavailable, so
// that a step does not outlive Restate's abort timeout waiting.
var waitFor = 4 * time.Minute

func waitError(err error, provider string) error {
	return fault.Wrap(fault.Unavailable, err, "%s: no permit within %s", provider, waitFor)
}
