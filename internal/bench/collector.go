package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
)

// collector is a local OTLP/HTTP traces endpoint that counts the spans of
// each batch and drops them: what the traced column exports to. It runs in
// the benchmark's process, so its CPU counts in the product's; it walks the
// protobuf's fields rather than decode it (decoding cost 3–4% of the
// traced column's CPU), so that what is measured is the product's side.
type collector struct {
	*httptest.Server
	spans, batches, bytes atomic.Int64
}

// emptyResponse is an ExportTraceServiceResponse with no field set.
var emptyResponse []byte

func newCollector() *collector {
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n, ok := countSpans(body)
		if !ok {
			http.Error(w, "not an OTLP ExportTraceServiceRequest", http.StatusBadRequest)
			return
		}
		c.spans.Add(int64(n))
		c.batches.Add(1)
		c.bytes.Add(int64(len(body)))
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(emptyResponse)
	}))
	return c
}

// countSpans counts the spans of an ExportTraceServiceRequest: its
// resource_spans (field 1), their scope_spans (field 2), their spans
// (field 2).
func countSpans(b []byte) (int, bool) {
	n := 0
	ok := eachField(b, 1, func(rs []byte) bool {
		return eachField(rs, 2, func(ss []byte) bool {
			return eachField(ss, 2, func([]byte) bool { n++; return true })
		})
	})
	return n, ok
}

// eachField calls fn with each length-delimited field numbered num of the
// message b, skipping the others.
func eachField(b []byte, num protowire.Number, fn func([]byte) bool) bool {
	for len(b) > 0 {
		f, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if f == num && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 || !fn(v) {
				return false
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(f, typ, b)
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return true
}
