package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/stack"
)

// BenchmarkIngressTransport measures a request to restate-server's ingress
// over loopback TCP and over its unix socket, side by side, on one server
// listening on both (--listen-mode all): the cost of keeping the engine
// off TCP. go test -bench IngressTransport -benchtime 5000x ./client
func BenchmarkIngressTransport(b *testing.B) {
	home := stacktest.Home(b)
	cfg := config.Default()
	cfg.Home = home
	ingress, err := stack.FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	admin, _ := stack.FreeAddr()
	node, _ := stack.FreeAddr()
	cmd := exec.Command(stacktest.RestateServer(b), "--base-dir", cfg.RestateDir(), "--node-name", config.RestateNode,
		"--listen-mode", "all", "--no-logo", "--log-format", "compact")
	cmd.Env = append(os.Environ(), "RESTATE_INGRESS__BIND_ADDRESS="+ingress, "RESTATE_ADMIN__BIND_ADDRESS="+admin,
		"RESTATE_BIND_ADDRESS="+node, "RESTATE_ADVERTISED_ADDRESS=http://"+node+"/", "RESTATE_DISABLE_TELEMETRY=true")
	log, _ := os.Create(filepath.Join(home, "restate.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	overSocket := &http.Client{Transport: client.Transport(cfg)}
	overTCP := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(hc *http.Client, url string) error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for get(overSocket, "http://"+client.IngressHost+"/restate/health") != nil || get(overTCP, "http://"+ingress+"/restate/health") != nil {
		if ctx.Err() != nil {
			b.Fatal("restate-server did not answer on both")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		hc   *http.Client
		url  string
	}{
		{"tcp", overTCP, "http://" + ingress + "/restate/health"},
		{"unix", overSocket, "http://" + client.IngressHost + "/restate/health"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if err := get(tc.hc, tc.url); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
