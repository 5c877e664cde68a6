package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/live"
	"github.com/ultramcp/durable/sanitize"
)

// printTokens prints to stderr, while a run is followed, each answer as
// its model writes it, a line at a time: the API's event stream carries
// the pieces (this process runs no workflow). Without the API it prints
// nothing. The returned stop ends it.
func (a *app) printTokens(ctx context.Context, id string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, config.URL(a.cfg.APIAddr)+"/workflows/"+id+"/events", nil)
		if err != nil {
			return
		}
		if a.cfg.APIToken != "" {
			req.Header.Set("Authorization", "Bearer "+a.cfg.APIToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return
		}
		lines := map[string]*strings.Builder{} // by step: the line being written
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		event := ""
		for sc.Scan() {
			switch line := sc.Text(); {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "token":
				var t live.Token
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &t) == nil {
					a.printToken(lines, t)
				}
			case line == "":
				event = ""
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// printToken adds t to its step's line and prints the lines it ends.
func (a *app) printToken(lines map[string]*strings.Builder, t live.Token) {
	who := t.Step
	if t.Participant != "" {
		who = fmt.Sprintf("round %d, %s", t.Round, t.Participant)
	}
	b := lines[t.Step]
	if b == nil || t.Restart {
		if b != nil {
			fmt.Fprintf(a.stderr, "  ✎ %s: (asked again)\n", sanitize.Line(who))
		}
		b = &strings.Builder{}
		lines[t.Step] = b
	}
	b.WriteString(t.Delta)
	text := b.String()
	for {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			break
		}
		if l := strings.TrimSpace(text[:i]); l != "" {
			fmt.Fprintf(a.stderr, "  ✎ %s: %s\n", sanitize.Line(who), sanitize.Line(l))
		}
		text = text[i+1:]
	}
	b.Reset()
	b.WriteString(text)
}
