package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restatedev/sdk-go/server"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/direct"
	restateengine "github.com/ultramcp/durable/engine/restate"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/service"
	"github.com/ultramcp/durable/workflow"
)

// body is a workflow under test; its output is what the case checks.
type body func(c engine.Context, in json.RawMessage) (string, error)

// runner runs a body to its end on one engine, sending it the signals in
// order once it has started: a refused one once, expecting the refusal; an
// accepted one until its gate takes it.
type runner interface {
	run(t *testing.T, name string, b body, signals []signal, cancel bool) (string, error)
}

// signal is a decision sent to a workflow's decide handler.
type signal struct {
	value   json.RawMessage
	refused bool // the gate is closed when it is sent: 409, and never used
}

// send delivers the signals through try, which answers whether the gate
// refused (and an error for anything else).
func send(ctx context.Context, signals []signal, try func(json.RawMessage) (refused bool, err error)) error {
	for _, s := range signals {
		for {
			refused, err := try(s.value)
			if err != nil {
				return err
			}
			if s.refused != refused {
				if s.refused {
					return fmt.Errorf("%s was taken, but the workflow did not wait for it", s.value)
				}
				// Not waiting yet: the gate opens when the body reaches it.
				select {
				case <-ctx.Done():
					return fmt.Errorf("%s was never taken: %w", s.value, ctx.Err())
				case <-time.After(2 * time.Millisecond):
				}
				continue
			}
			break
		}
	}
	return nil
}

// childWorkflows are the workflows the cases call as children.
var childWorkflows = map[string]engine.Body{
	"echo-child": func(c engine.Context, in json.RawMessage) (json.RawMessage, error) {
		return engine.Run(c, "echo", engine.StepOptions{}, func(context.Context) (json.RawMessage, error) {
			return json.RawMessage(fmt.Sprintf(`"%s got %s"`, c.WorkflowID(), strings.Trim(string(in), `"`))), nil
		})
	},
	"failing-child": func(c engine.Context, in json.RawMessage) (json.RawMessage, error) {
		return nil, fault.New(fault.Permanent, "child step broke")
	},
	"sleepy-child": func(c engine.Context, in json.RawMessage) (json.RawMessage, error) {
		err := c.Sleep("long", time.Minute)
		return json.RawMessage(`"child sleep ended ` + fault.KindOf(err).String() + `"`), nil
	},
}

// undoLog records compensations in the order they ran, per case.
type undoLog struct {
	mu  sync.Mutex
	ran []string
}

func (u *undoLog) add(s string) { u.mu.Lock(); u.ran = append(u.ran, s); u.mu.Unlock() }
func (u *undoLog) String() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.ran, ",")
}

var undone = map[string]*undoLog{"saga-reverse": {}, "cancel-reaches-children": {}}

// conformance cases: each body counts its side effects in the case's own
// counters, so a case sees what really ran.
type counters struct{ a, b atomic.Int32 }

var cases = []struct {
	name    string
	body    func(k *counters) body
	signals []signal
	cancel  bool
	want    string
}{
	{
		// A step's result is kept: when a later step's retry replays the
		// body, the earlier step is not run again.
		name: "steps-kept-across-retries",
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				a, err := engine.Run(c, "a", engine.StepOptions{}, func(context.Context) (int32, error) { return k.a.Add(1), nil })
				if err != nil {
					return "", err
				}
				b, err := engine.Run(c, "b", engine.StepOptions{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond}, func(context.Context) (int32, error) {
					if n := k.b.Add(1); n < 2 {
						return 0, fault.New(fault.Unavailable, "transient")
					}
					return k.b.Load(), nil
				})
				return fmt.Sprintf("a ran %d, b ran %d, results %d %d", k.a.Load(), k.b.Load(), a, b), err
			}
		},
		want: "a ran 1, b ran 2, results 1 2",
	},
	{
		// A transient fault that outlasts its attempts is final: Permanent
		// on both engines, after exactly that many attempts; invalid input
		// stays invalid and is not retried.
		name: "final-error-kinds",
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				_, err1 := engine.Run(c, "flaky", engine.StepOptions{MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}, func(context.Context) (int, error) {
					k.a.Add(1)
					return 0, fault.New(fault.Unavailable, "still down")
				})
				_, err2 := engine.Run(c, "bad", engine.StepOptions{MaxAttempts: 3}, func(context.Context) (int, error) {
					k.b.Add(1)
					return 0, fault.Invalidf("x", "nope")
				})
				return fmt.Sprintf("%s after %d, %s after %d", fault.KindOf(err1), k.a.Load(), fault.KindOf(err2), k.b.Load()), nil
			}
		},
		want: "permanent after 2, invalid after 1",
	},
	{
		// RunAll runs its steps at once (each waits until all have
		// started) and one failing leaves the others their results.
		name: "runall-concurrent-and-independent",
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				var started sync.WaitGroup
				started.Add(3)
				step := func(i int) engine.Step {
					return engine.TypedStep[int]{Name: fmt.Sprintf("s%d", i), Opts: engine.StepOptions{MaxAttempts: 1}, Fn: func(ctx context.Context) (int, error) {
						started.Done()
						done := make(chan struct{})
						go func() { started.Wait(); close(done) }()
						select {
						case <-done:
						case <-time.After(10 * time.Second):
							return 0, fault.New(fault.Permanent, "step %d ran alone", i)
						}
						if i == 1 {
							return 0, fault.New(fault.Permanent, "s1 fails")
						}
						return i * 10, nil
					}}.Raw()
				}
				results, errs := c.RunAll([]engine.Step{step(0), step(1), step(2)})
				var parts []string
				for i := range results {
					if errs[i] != nil {
						parts = append(parts, fmt.Sprintf("s%d %s", i, fault.KindOf(errs[i])))
					} else {
						parts = append(parts, fmt.Sprintf("s%d=%s", i, results[i]))
					}
				}
				return strings.Join(parts, " "), nil
			}
		},
		want: "s0=0 s1 permanent s2=20",
	},
	{
		name: "durable-sleep",
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				return "slept", c.Sleep("nap", 50*time.Millisecond)
			}
		},
		want: "slept",
	},
	{
		name: "await-times-out",
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				v, ok, err := c.Await(workflow.DecisionPromise, 100*time.Millisecond)
				return fmt.Sprintf("ok=%v value=%s", ok, v), err
			}
		},
		want: "ok=false value=",
	},
	{
		name:    "await-gets-the-signal",
		signals: []signal{{value: json.RawMessage(`{"decision":"go"}`)}},
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				v, ok, err := c.Await(workflow.DecisionPromise, time.Minute)
				return fmt.Sprintf("ok=%v value=%s", ok, v), err
			}
		},
		want: `ok=true value={"decision":"go"}`,
	},
	{
		// A gate opens only while the body waits at it: a decision sent
		// while it waits for an approval is refused and never used; the
		// decision sent once it waits for one is.
		name: "gates-open-only-while-waiting",
		signals: []signal{
			{value: json.RawMessage(`{"decision":"too early"}`), refused: true},
			{value: json.RawMessage(`{"approved":true}`)},
			{value: json.RawMessage(`{"approved":false}`), refused: true},
			{value: json.RawMessage(`{"decision":"in time"}`)},
		},
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				a, _, err := c.Await(workflow.ApprovalPromise, time.Minute)
				if err != nil {
					return "", err
				}
				d, _, err := c.Await(workflow.DecisionPromise, time.Minute)
				return fmt.Sprintf("%s then %s", a, d), err
			}
		},
		want: `{"approved":true} then {"decision":"in time"}`,
	},
	{
		// Children run side by side under ids derived from the parent's;
		// a child's failure is its own.
		name: "child-calls",
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				outs, errs := c.Call([]engine.Child{
					{Workflow: "echo-child", ID: engine.ChildID(c, "a"), Input: json.RawMessage(`"x"`)},
					{Workflow: "failing-child", ID: engine.ChildID(c, "b"), Input: json.RawMessage(`null`)},
				})
				return fmt.Sprintf("%s | %s: %v", outs[0], fault.KindOf(errs[1]), errs[1] != nil && strings.Contains(errs[1].Error(), "child step broke")), nil
			}
		},
		want: `"w1-a got x" | permanent: true`,
	},
	{
		// Compensations run in reverse, each as a step, when the workflow
		// fails after the steps they undo.
		name: "saga-reverse",
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				saga := engine.NewSaga(c)
				for _, name := range []string{"reserve", "branch", "comment"} {
					if _, err := engine.Run(c, name, engine.StepOptions{}, func(context.Context) (bool, error) { return true, nil }); err != nil {
						return "", err
					}
					saga.Add(name, func(context.Context) error { undone["saga-reverse"].add(name); return nil })
				}
				ran, err := saga.Unwind()
				if err != nil {
					return "", err
				}
				return "undone " + undone["saga-reverse"].String() + " as " + strings.Join(ran, ","), nil
			}
		},
		want: "undone comment,branch,reserve as undo-comment,undo-branch,undo-reserve",
	},
	{
		// Cancelling the parent cancels the child it waits for; the parent
		// sees Cancelled and can still compensate.
		name:   "cancel-reaches-children",
		cancel: true,
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				saga := engine.NewSaga(c)
				saga.Add("started", func(context.Context) error { undone["cancel-reaches-children"].add("started"); return nil })
				_, errs := c.Call([]engine.Child{{Workflow: "sleepy-child", ID: engine.ChildID(c, "s"), Input: json.RawMessage(`null`)}})
				if fault.KindOf(errs[0]) == fault.Cancelled {
					if _, err := saga.Unwind(); err != nil {
						return "", err
					}
				}
				return "call ended " + fault.KindOf(errs[0]).String() + ", undone " + undone["cancel-reaches-children"].String(), nil
			}
		},
		want: "call ended cancelled, undone started",
	},
	{
		// Cancellation reaches the body at its next wait as Cancelled.
		name:   "cancelled-during-sleep",
		cancel: true,
		body: func(k *counters) body {
			return func(c engine.Context, _ json.RawMessage) (string, error) {
				err := c.Sleep("long", time.Minute)
				return "sleep ended " + fault.KindOf(err).String(), nil
			}
		},
		want: "sleep ended cancelled",
	},
}

func TestConformance(t *testing.T) {
	engines := map[string]func(t *testing.T) runner{
		"direct":  func(*testing.T) runner { return directRunner{} },
		"restate": newRestateRunner,
	}
	for engineName, mk := range engines {
		t.Run(engineName, func(t *testing.T) {
			r := mk(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					for _, u := range undone {
						u.mu.Lock()
						u.ran = nil
						u.mu.Unlock()
					}
					out, err := r.run(t, tc.name, tc.body(&counters{}), tc.signals, tc.cancel)
					if err != nil {
						t.Fatalf("%s: %v", engineName, err)
					}
					if out != tc.want {
						t.Errorf("%s: got %q, want %q", engineName, out, tc.want)
					}
				})
			}
		})
	}
}

type directRunner struct{}

func (directRunner) run(t *testing.T, name string, b body, signals []signal, cancel bool) (string, error) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	c := direct.New(ctx, "w1", nil).WithWorkflows(childWorkflows)
	sent := make(chan error, 1)
	go func() {
		sent <- send(ctx, signals, func(v json.RawMessage) (bool, error) {
			err := c.Resolve(engine.GateOf(v), v)
			if fault.KindOf(err) == fault.Conflict {
				return true, nil
			}
			return false, err
		})
	}()
	if cancel {
		go func() { time.Sleep(100 * time.Millisecond); stop() }()
	}
	out, err := b(c, nil)
	if serr := <-sent; serr != nil && err == nil {
		err = serr
	}
	return out, err
}

// restateRunner serves each case's body as a workflow of its own on a
// real restate-server.
type restateRunner struct {
	client *client.Client
	bodies sync.Map // case name → body
}

func newRestateRunner(t *testing.T) runner {
	env := stacktest.Start(t, stacktest.Options{RestateOnly: true})
	r := &restateRunner{client: env.Client}
	srv := server.NewRestate().WithLogger(slog.NewTextHandler(nopWriter{}, nil), true)
	for _, tc := range cases {
		name := tc.name
		srv = srv.Bind(restateengine.Workflow(name, func(c engine.Context, in json.RawMessage) (string, error) {
			b, _ := r.bodies.Load(name)
			return b.(body)(c, in)
		}, restateengine.DefaultServiceOptions))
	}
	for name, b := range childWorkflows {
		srv = srv.Bind(restateengine.Workflow(name, b, restateengine.DefaultServiceOptions))
	}
	h, err := srv.Handler()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = service.ServeListener(ctx, ln, h, nil) }()
	t.Cleanup(func() { stop(); <-done })
	reg, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.Stack.Register(reg, config.URL(ln.Addr().String())); err != nil {
		t.Fatal(err)
	}
	return r
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

func (r *restateRunner) run(t *testing.T, name string, b body, signals []signal, cancel bool) (string, error) {
	r.bodies.Store(name, b)
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	started, err := r.client.Start(ctx, name, "w1", []byte("null"))
	if err != nil {
		return "", err
	}
	if err := send(ctx, signals, func(v json.RawMessage) (bool, error) {
		err := r.client.Decide(ctx, name, "w1", v)
		var rerr *client.Error
		if errors.As(err, &rerr) && rerr.Status == http.StatusConflict {
			return true, nil
		}
		return false, err
	}); err != nil {
		return "", err
	}
	if cancel {
		time.Sleep(300 * time.Millisecond)
		if err := r.client.Cancel(ctx, started.InvocationID); err != nil {
			return "", err
		}
	}
	out, err := r.client.Attach(ctx, name, "w1")
	if err != nil {
		var rerr *client.Error
		if errors.As(err, &rerr) {
			return "", fmt.Errorf("restate: %d %s", rerr.Code, rerr.Message)
		}
		return "", err
	}
	var s string
	if err := json.Unmarshal(out, &s); err != nil {
		return "", fmt.Errorf("output %s: %w", out, err)
	}
	return s, nil
}
