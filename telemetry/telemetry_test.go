package telemetry

import (
	"context"
	"errors"
	"testing"
)

// Off by default: without an endpoint nothing is installed, and a span is
// a no-op that ends nothing.
func TestOffWithoutEndpoint(t *testing.T) {
	shutdown, err := Setup(context.Background(), Options{Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if On() {
		t.Fatal("tracing is on without an endpoint")
	}
	_, span := Start(context.Background(), "x")
	if span.IsRecording() {
		t.Error("a span records while tracing is off")
	}
	End(span, errors.New("fails"))
}

func TestRestateEndpointSpellsTheProtocol(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "")
	if got := RestateEndpoint("http://127.0.0.1:4318/"); got != "otlp+http://127.0.0.1:4318/v1/traces" {
		t.Errorf("http/protobuf: %s", got)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	if got := RestateEndpoint("http://127.0.0.1:4317"); got != "http://127.0.0.1:4317" {
		t.Errorf("grpc: %s", got)
	}
	if RestateEndpoint("") != "" {
		t.Error("no endpoint, no tracing")
	}
}
