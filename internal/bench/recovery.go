package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/stack"
	"github.com/ultramcp/durable/workflow"
)

// Recovery is what a kill -9 of the service with debates in flight costs.
type Recovery struct {
	Debates int
	// Kill is when the service died: every debate had its first round
	// journaled. Up is how long `up` took to bring the service back (start,
	// health, registration); Done how long from the kill until the last
	// debate finished.
	Up, Done time.Duration
	// Floor is the least the rest could take: the remaining rounds and the
	// moderator at the fake model's latency.
	Floor time.Duration
	// Repeated counts model calls answered twice: a journaled call run
	// again after the restart.
	Repeated  int
	Completed int
}

// recovery runs n debates on a stack whose service is its own process (the
// product as `ultramcp up` runs it, with its SQLite store), kills the
// service with SIGKILL once every debate has finished its first round,
// brings it back with up, and times the rest.
func (b *Bench) recovery(ctx context.Context, n int) (Recovery, error) {
	self, err := os.Executable()
	if err != nil {
		return Recovery{}, err
	}
	latency := b.o.Latency
	fake := llmtest.New(llmtest.Behavior{Latency: latency})
	defer fake.Close()
	cfg, err := stack.EphemeralConfig(filepath.Join(b.home, "recovery"))
	if err != nil {
		return Recovery{}, err
	}
	cfg.RestateServerBin, cfg.LLM = b.o.RestateServerBin, "openai"
	s := stack.New(cfg, self, nil)
	s.ServiceEnv = []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=bench-not-a-secret"}
	defer s.Stop()
	if err := s.Up(ctx); err != nil {
		return Recovery{}, fmt.Errorf("recovery stack: %w", err)
	}
	c := client.ForStack(cfg)
	in := b.input(b.o.Participants, b.o.Rounds, "")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("recover-%d", i)
		if _, err := c.Start(ctx, workflow.ChainOfDebate, ids[i], in); err != nil {
			return Recovery{}, err
		}
	}
	// Kill once every debate's first round is answered.
	deadline := time.Now().Add(time.Minute)
	for {
		done := 0
		for _, id := range ids {
			if len(fake.Calls(id+"/round-1/")) == b.o.Participants {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			return Recovery{}, fmt.Errorf("recovery: %d of %d debates finished round 1 in a minute", done, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	svc := s.Service()
	if err := svc.Kill(); err != nil {
		return Recovery{}, err
	}
	killed := time.Now()
	for _, alive := svc.PID(); alive; _, alive = svc.PID() {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Up(ctx); err != nil {
		return Recovery{}, fmt.Errorf("up after the kill: %w", err)
	}
	r := Recovery{Debates: n, Up: time.Since(killed), Floor: time.Duration(b.o.Rounds) * latency}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, id := range ids {
		wg.Go(func() {
			if _, err := c.Attach(ctx, workflow.ChainOfDebate, id); err == nil {
				mu.Lock()
				r.Completed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.Done = time.Since(killed)
	for _, id := range ids {
		for _, calls := range fake.Calls(id + "/") {
			if calls > 1 {
				r.Repeated++
			}
		}
	}
	return r, nil
}
