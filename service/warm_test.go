package service

import (
	"log/slog"
	"testing"
	"time"
)

// The warm-up compiles the SDK's core once per process: the first takes
// the compile, a second finds it done.
func TestWarmSDKCompilesOnce(t *testing.T) {
	start := time.Now()
	warmSDK(slog.New(slog.DiscardHandler))
	first := time.Since(start)
	start = time.Now()
	warmSDK(slog.New(slog.DiscardHandler))
	second := time.Since(start)
	t.Logf("first %s, second %s", first, second)
	if second*5 > first {
		t.Errorf("the second warm-up (%s) is not much cheaper than the first (%s): the core was not compiled by it", second, first)
	}
}
