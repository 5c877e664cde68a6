package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A Restate that accepts and never answers does not hang a caller: every
// request but the waits (attach, call) has a deadline of its own.
func TestRequestsHaveADeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c := New(srv.URL, srv.URL)
	c.Timeout = 200 * time.Millisecond
	start := time.Now()
	if _, err := c.Start(context.Background(), "chain-of-debate", "x", []byte(`{}`)); err == nil {
		t.Fatal("a hung start returned no error")
	}
	if _, err := c.Services(context.Background()); err == nil {
		t.Fatal("a hung admin call returned no error")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("two hung requests took %s", took)
	}
	// Attach waits as long as its caller lets it.
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, _ = c.Attach(ctx, "chain-of-debate", "x")
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("attach gave up after %s, before its caller did", took)
	}
}
