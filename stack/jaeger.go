package stack

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ultramcp/durable/config"
)

// JaegerVersion is the Jaeger release tools/jaeger pins (its go.mod says
// the same): the newest one the Go module proxy here serves as approved.
const JaegerVersion = "v1.75.0"

// jaegerCache is where the pinned Jaeger is built, under the module root:
// git-ignored, kept between builds of the product.
var jaegerCache = filepath.Join(".cache", "jaeger", "jaeger-"+JaegerVersion)

// JaegerBin returns the Jaeger binary: ULTRAMCP_JAEGER, else the pinned
// build under the module root (.cache/jaeger), building it first when it
// is missing. The first build compiles the OpenTelemetry collector: it
// takes about five minutes and 2 GB of memory, and says so; later ones
// find it made.
func JaegerBin(ctx context.Context, cfg config.Config, progress func(format string, args ...any)) (string, error) {
	if cfg.JaegerBin != "" {
		return cfg.JaegerBin, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, jaegerCache)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	progress("building Jaeger %s from its Go module (tools/jaeger) into %s: the first time only, about 5 minutes and 2 GB of memory…", JaegerVersion, filepath.Dir(bin))
	if err := buildJaeger(ctx, filepath.Join(root, "tools", "jaeger"), bin, progress); err != nil {
		return "", err
	}
	return bin, nil
}

// moduleRoot is the nearest directory up from the working directory, or
// from the executable, that holds tools/jaeger/go.mod.
func moduleRoot() (string, error) {
	mod, ok := searchUp(filepath.Join("tools", "jaeger", "go.mod"))
	if !ok {
		return "", fmt.Errorf("tools/jaeger/go.mod not found above the working directory: run up --with-jaeger from the checkout, or set ULTRAMCP_JAEGER to a Jaeger v2 binary")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(mod))), nil
}

// buildJaeger builds cmd/jaeger of the tools module into bin, telling of
// its progress every 15 s (go build -v names each package it compiles).
func buildJaeger(ctx context.Context, dir, bin string, progress func(string, ...any)) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-o", tmp, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = dir
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("build Jaeger: %w", err)
	}
	var tail []string
	packages, last := 0, time.Now()
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		packages++
		tail = append(tail, lines.Text())
		if len(tail) > 20 {
			tail = tail[1:]
		}
		if time.Since(last) > 15*time.Second {
			progress("  … %d packages compiled (%s)", packages, time.Since(start).Round(time.Second))
			last = time.Now()
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("build Jaeger: %w\n%s", err, strings.Join(tail, "\n"))
	}
	progress("built Jaeger %s in %s", JaegerVersion, time.Since(start).Round(time.Second))
	return os.Rename(tmp, bin)
}

// jaegerDir holds Jaeger's configuration and its span storage.
func (s *Stack) jaegerDir() string { return s.Cfg.Path("jaeger") }

// Jaeger is the Jaeger process of the stack (bin "" until JaegerBin).
func (s *Stack) Jaeger(bin string) Process {
	return Process{
		Name: "jaeger", Bin: bin, Dir: s.Cfg.Home, Isolated: true,
		Args: []string{"--config=file:" + filepath.Join(s.jaegerDir(), "config.yaml")},
	}
}

// StartJaeger starts Jaeger unless it runs: every port on loopback, spans
// kept in the state dir (Badger, a day's TTL), started afresh when they
// outgrow ULTRAMCP_JAEGER_MAX_MB.
func (s *Stack) StartJaeger(ctx context.Context) (*Process, error) {
	query := "http://" + s.Cfg.JaegerAddr + "/api/services"
	if s.probe(query) == nil {
		fmt.Fprintf(s.Out, "jaeger already running\n")
		return nil, nil
	}
	say := func(format string, args ...any) { fmt.Fprintf(s.Out, format+"\n", args...) }
	bin, err := JaegerBin(ctx, s.Cfg, say)
	if err != nil {
		return nil, err
	}
	p := s.Jaeger(bin)
	if _, running := p.PID(); !running {
		if err := s.writeJaegerConfig(); err != nil {
			return nil, err
		}
		pid, err := p.Start()
		if err != nil {
			return nil, err
		}
		say("started jaeger (pid %d) on %s, OTLP on %s, log %s", pid, s.Cfg.JaegerAddr, s.Cfg.JaegerOTLPAddr, p.LogFile())
	}
	return &p, s.waitHealthy(ctx, p, query)
}

func (s *Stack) writeJaegerConfig() error {
	dir := s.jaegerDir()
	data := filepath.Join(dir, "data")
	if size := dirSize(data); size > s.Cfg.JaegerMaxMB<<20 {
		fmt.Fprintf(s.Out, "jaeger's spans take %d MB, over ULTRAMCP_JAEGER_MAX_MB (%d): starting them afresh\n", size>>20, s.Cfg.JaegerMaxMB)
		if err := os.RemoveAll(data); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf(jaegerConfig, s.Cfg.JaegerAddr, filepath.Join(data, "keys"), filepath.Join(data, "values"), s.Cfg.JaegerOTLPAddr)
	return os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(conf), 0o600)
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// jaegerConfig is Jaeger v2's (an OpenTelemetry collector's) configuration:
// the query API (its gRPC port on a free loopback one), Badger storage and
// an OTLP/HTTP receiver; its own metrics off, so it opens no other port.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: local
    http:
      endpoint: %s
    grpc:
      endpoint: 127.0.0.1:0
  jaeger_storage:
    backends:
      local:
        badger:
          directories:
            keys: %s
            values: %s
          ephemeral: false
          ttl:
            spans: 24h
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: local
`
