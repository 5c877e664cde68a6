package llm

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/retry"
)

// RetryPolicy bounds how a transient fault is retried inside one step.
//
// Retrying inside the step, not by failing the step, matters on Restate: a
// retryable error leaving a parallel step ends the whole invocation attempt
// and re-runs its siblings (seen on Restate 1.7 with RunAsync steps). Only terminal errors, or a
// budget spent, leave the step.
type RetryPolicy struct {
	MaxAttempts  int           // total attempts, including the first
	Initial      time.Duration // first backoff
	Max          time.Duration // backoff ceiling
	CallTimeout  time.Duration // per attempt; keep below Restate's abort timeout
	TotalTimeout time.Duration // all attempts together, the time spent waiting for permits not counted
	// Gate, if set, gives each attempt a permit of the provider's limits
	// first; a 429 it meets anyway waits its Retry-After.
	Gate Gate
}

// DefaultRetryPolicy suits remote providers: about 7 attempts over at most
// five minutes, each call at most two minutes (Restate's abort timeout on our
// services is ten).
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:  7,
	Initial:      200 * time.Millisecond,
	Max:          10 * time.Second,
	CallTimeout:  2 * time.Minute,
	TotalTimeout: 5 * time.Minute,
}

// Retrying wraps m so that transient faults are retried with bounded,
// jittered exponential backoff. Permanent faults return at once.
func Retrying(m Model, p RetryPolicy) Model {
	return &retrying{m: m, p: p}
}

type retrying struct {
	m Model
	p RetryPolicy
}

func (r *retrying) Name() string { return r.m.Name() }

func (r *retrying) Complete(ctx context.Context, req Request) (Response, error) {
	if r.p.TotalTimeout > 0 && r.p.Gate == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.p.TotalTimeout)
		defer cancel()
	}
	// Jittered, so that parallel participants hitting one rate limit do not
	// come back in step.
	policy := retry.Policy{Initial: r.p.Initial, Max: r.p.Max, Attempts: max(r.p.MaxAttempts, 1), Jitter: true, Cause: "model-" + r.m.Name()}
	if r.p.Gate == nil {
		// No gate to hold the key for everyone: this call waits what the
		// provider told it.
		policy.After = func(err error) time.Duration {
			after, _ := RetryAfterOf(err)
			return after
		}
	}
	var resp Response
	var tried time.Duration // trying, not waiting for permits
	tries := 0
	attempts, err := policy.Do(ctx, func(ctx context.Context) (err error) {
		if r.p.TotalTimeout > 0 && tried >= r.p.TotalTimeout {
			return fault.New(fault.Permanent, "%s: %s spent trying", r.m.Name(), tried.Round(time.Second))
		}
		if tries++; tries > 1 && req.OnDelta != nil {
			req.OnDelta("", true) // what the failed attempt streamed is void
		}
		start := time.Now()
		var waited time.Duration
		resp, waited, err = r.gated(ctx, req)
		tried += time.Since(start) - waited
		return err
	})
	switch {
	case err == nil:
		resp.Attempts = attempts
		return resp, nil
	case fault.IsRetryable(err):
		return Response{}, fault.Wrap(fault.Unavailable, err, "%s: gave up after %d attempts", r.m.Name(), attempts)
	}
	return Response{}, err
}

// gated is one attempt under a permit of the provider's limits, and how
// long it waited for it.
func (r *retrying) gated(ctx context.Context, req Request) (Response, time.Duration, error) {
	if r.p.Gate == nil {
		resp, err := r.once(ctx, req)
		return resp, 0, err
	}
	tokens := estimate(req)
	wctx, cancel := context.WithTimeout(ctx, waitFor)
	release, waited, err := r.p.Gate.Acquire(wctx, askOf(r.m.Name(), req, tokens))
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, waited, ClassifyTransport(r.m.Name(), ctx.Err())
		}
		return Response{}, waited, waitError(err, r.m.Name())
	}
	resp, err := r.once(ctx, req)
	used := resp.TokensIn + resp.TokensOut
	if err != nil {
		used = tokens // a failed call may still have been counted
	}
	release(used, outcomeOf(err))
	return resp, waited, err
}

func (r *retrying) once(ctx context.Context, req Request) (Response, error) {
	if r.p.CallTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.p.CallTimeout)
		defer cancel()
	}
	resp, err := r.m.Complete(ctx, req)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && fault.KindOf(err) == fault.Internal {
		err = fault.Wrap(fault.Unavailable, err, "%s: call timed out", r.m.Name())
	}
	return resp, err
}

// ClassifyStatus turns an HTTP status from a provider into a fault kind.
func ClassifyStatus(provider string, status int, msg string) error {
	kind := fault.Unavailable
	switch {
	case status == 429 || status == 408 || status >= 500:
		kind = fault.Unavailable
	case status == 404:
		kind = fault.NotFound
	case status >= 400:
		kind = fault.Permanent
	}
	reason := httpReason(status)
	if msg != "" {
		reason += ": " + msg
	}
	return fault.New(kind, "%s: %d %s", provider, status, reason)
}

func httpReason(status int) string {
	switch status {
	case 400:
		return "bad request"
	case 401:
		return "unauthorized (check the API key)"
	case 403:
		return "forbidden"
	case 404:
		return "model or endpoint not found"
	case 429:
		return "rate limited"
	default:
		return fmt.Sprintf("status %d", status)
	}
}

// Redact removes every occurrence of the given secrets from s, so that an
// endpoint echoing a key back in an error cannot leak it into logs or journals.
func Redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return s
}

// ClassifyTransport classifies an error that carried no HTTP status:
// cancellation is final, anything else (network, timeout) may pass.
func ClassifyTransport(provider string, err error, secrets ...string) error {
	if errors.Is(err, context.Canceled) {
		return fault.Wrap(fault.Cancelled, err, "%s", provider)
	}
	return fault.New(fault.Unavailable, "%s: %s", provider, Redact(withoutURL(err).Error(), secrets...))
}

// withoutURL drops the endpoint's URL from a transport error: it names an
// internal address (a proxy, a local model server), and the error goes on
// to clients through the workflow's failure. The operator finds the
// endpoint in the configuration.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s request: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}
