package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Span is one span as a trace store gives it back.
type Span struct {
	SpanID, ParentID string
	Name, Service    string
	Start            time.Time
	Duration         time.Duration
	Attrs            map[string]any
	Error            string
}

// Jaeger reads traces from Jaeger's query API (v2 serves the v1 JSON API
// at /api/traces/{id}).
type Jaeger struct {
	URL  string // http://127.0.0.1:16686
	HTTP *http.Client
}

// ErrNoTrace means the trace store has no such trace (yet: spans arrive in
// batches).
var ErrNoTrace = fmt.Errorf("trace not found")

// Trace returns the spans of trace id.
func (j Jaeger) Trace(ctx context.Context, traceID string) ([]Span, error) {
	hc := j.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL+"/api/traces/"+url.PathEscape(traceID), nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrNoTrace
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger: %s: %.200s", resp.Status, body)
	}
	var doc struct {
		Data []struct {
			Spans []struct {
				SpanID     string `json:"spanID"`
				Operation  string `json:"operationName"`
				References []struct {
					RefType string `json:"refType"`
					SpanID  string `json:"spanID"`
				} `json:"references"`
				StartTime int64 `json:"startTime"` // µs
				Duration  int64 `json:"duration"`  // µs
				Tags      []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
				ProcessID string `json:"processID"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	var spans []Span
	for _, t := range doc.Data {
		for _, s := range t.Spans {
			sp := Span{SpanID: s.SpanID, Name: s.Operation, Service: t.Processes[s.ProcessID].ServiceName,
				Start: time.UnixMicro(s.StartTime), Duration: time.Duration(s.Duration) * time.Microsecond, Attrs: map[string]any{}}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" {
					sp.ParentID = r.SpanID
				}
			}
			for _, tag := range s.Tags {
				sp.Attrs[tag.Key] = tag.Value
			}
			if sp.Attrs["otel.status_code"] == "ERROR" || sp.Attrs["error"] == true {
				sp.Error = fmt.Sprint(sp.Attrs["otel.status_description"])
			}
			spans = append(spans, sp)
		}
	}
	if len(spans) == 0 {
		return nil, ErrNoTrace
	}
	return spans, nil
}
