package bench

import (
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// countSpans walks the wire format to the same count a decode finds.
func TestCountSpansAsDecoded(t *testing.T) {
	req := &coltrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: make([]*tracepb.Span, 3)}, {Spans: make([]*tracepb.Span, 2)}}},
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "x", TraceId: make([]byte, 16)}}}}},
	}}
	for i := range req.ResourceSpans[0].ScopeSpans[0].Spans {
		req.ResourceSpans[0].ScopeSpans[0].Spans[i] = &tracepb.Span{Name: "s"}
	}
	for i := range req.ResourceSpans[0].ScopeSpans[1].Spans {
		req.ResourceSpans[0].ScopeSpans[1].Spans[i] = &tracepb.Span{Name: "t", Attributes: nil}
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := countSpans(b); !ok || n != 6 {
		t.Errorf("counted %d (%v), want 6", n, ok)
	}
	if _, ok := countSpans([]byte{0xff}); ok {
		t.Error("garbage counted")
	}
}
