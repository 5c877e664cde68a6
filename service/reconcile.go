package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
)

// Reconcile brings the store in line with Restate for the workflows the
// store still has open and has not heard of for quiet: paused invocations
// are marked paused (and running again once resumed), killed, cancelled or
// failed ones failed or cancelled with Restate's reason, completed ones
// completed with their output, and ones Restate no longer knows failed as
// vanished. A workflow's own record steps cannot do this: a killed
// invocation runs no more steps. It returns how many rows it changed.
func Reconcile(ctx context.Context, st *store.Store, c *client.Client, quiet time.Duration) (int, error) {
	var open []store.Workflow
	for _, status := range []string{workflow.StatusPending, workflow.StatusRunning, workflow.StatusPaused} {
		ws, err := st.List(ctx, store.Filter{Status: status, Limit: 500})
		if err != nil {
			return 0, err
		}
		open = append(open, ws...)
	}
	changed := 0
	now := time.Now()
	for _, w := range open {
		if now.Sub(w.UpdatedAt) < quiet {
			continue
		}
		status, output, reason, ok := verdict(ctx, c, w)
		if !ok || (status == w.Status && reason == w.Error) {
			continue
		}
		if err := st.Reconciled(ctx, w.ID, status, output, reason, now); err != nil {
			return changed, err
		}
		changed++
	}
	return changed, nil
}

// verdict is what Restate says a store row should be.
func verdict(ctx context.Context, c *client.Client, w store.Workflow) (status string, output []byte, reason string, ok bool) {
	inv, err := c.Find(ctx, w.Workflow, w.ID)
	switch {
	case errors.Is(err, client.ErrNotFound):
		if w.Status == workflow.StatusPending {
			return workflow.StatusNotStarted, nil, "Restate has no invocation of it: it was never started", true
		}
		return workflow.StatusFailed, nil, "vanished: Restate no longer knows this invocation (purged, or its data was lost)", true
	case err != nil:
		return "", nil, "", false
	}
	switch inv.Status {
	case "paused":
		return workflow.StatusPaused, nil, "paused by Restate after its attempts ran out: " + sanitize.FirstLine(inv.LastFailure, 300) + " (restate invocations resume|kill " + inv.ID + ")", true
	case "completed":
	default:
		if w.Status == workflow.StatusPaused { // resumed
			return workflow.StatusRunning, nil, "", true
		}
		return "", nil, "", false
	}
	switch inv.Outcome() {
	case "succeeded":
		out, err := c.Output(ctx, w.Workflow, w.ID)
		if err != nil {
			return "", nil, "", false
		}
		return workflow.StatusCompleted, out, "", true
	case "cancelled":
		return workflow.StatusCancelled, nil, inv.Failure, true
	}
	reason = inv.Failure
	if strings.Contains(strings.ToLower(reason), "killed") {
		reason = "killed in Restate: " + reason
	}
	return workflow.StatusFailed, nil, reason, true
}

// reconcileLoop runs Reconcile every interval until ctx ends.
func reconcileLoop(ctx context.Context, st *store.Store, c *client.Client, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := Reconcile(ctx, st, c, interval)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("reconcile the store with Restate", "err", err)
		case n > 0:
			log.Info("reconciled the store with Restate", "workflows", fmt.Sprint(n))
		}
	}
}
