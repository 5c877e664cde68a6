package bench

import (
	"fmt"

	restate "github.com/restatedev/sdk-go"

	"github.com/ultramcp/durable/llm"
)

// rawDebateService is the reference the product is measured against: the
// baseline debate (the cost of durability our figures must beat) written
// on the raw SDK — each model call a RunAsync step, a round awaited with
// restate.Wait, then one step for the moderator; no store, no progress, no
// validation.
const rawDebateService = "bench-raw-debate"

type rawInput struct {
	Participants int `json:"participants"`
	Rounds       int `json:"rounds"`
}

func rawDebate(model llm.Model) restate.ServiceDefinition {
	return restate.NewWorkflow(rawDebateService).Handler("run", restate.NewWorkflowHandler(
		func(ctx restate.WorkflowContext, in rawInput) ([]string, error) {
			positions := make([]string, in.Participants)
			for r := 1; r <= in.Rounds; r++ {
				futures := make([]restate.RunAsyncFuture[string], in.Participants)
				for i := range in.Participants {
					prompt := fmt.Sprintf("round %d, participant %d; previous: %v", r, i, positions)
					futures[i] = restate.RunAsync(ctx, func(rc restate.RunContext) (string, error) {
						out, err := model.Complete(rc, llm.Request{Messages: []llm.Message{{Role: "user", Content: prompt}}})
						return out.Text, err
					}, restate.WithName(fmt.Sprintf("round-%d/p%d", r, i+1)))
				}
				selectables := make([]restate.Future, len(futures))
				for i, f := range futures {
					selectables[i] = f
				}
				for fut, err := range restate.Wait(ctx, selectables...) {
					if err != nil {
						return nil, err
					}
					_ = fut
				}
				for i, f := range futures {
					v, err := f.Result()
					if err != nil {
						return nil, err
					}
					positions[i] = v
				}
			}
			synthesis, err := restate.Run(ctx, func(rc restate.RunContext) (string, error) {
				out, err := model.Complete(rc, llm.Request{Messages: []llm.Message{{Role: "user", Content: fmt.Sprintf("synthesise %v", positions)}}})
				return out.Text, err
			}, restate.WithName("moderator"))
			if err != nil {
				return nil, err
			}
			return append(positions, synthesis), nil
		}))
}
