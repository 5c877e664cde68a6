package stack

import (
	"os"
	"strings"
	"testing"
)

// JaegerVersion names the release tools/jaeger pins: the binary's name in
// .cache (up, make jaeger, the tests) follows it.
func TestJaegerVersionIsThePinnedOne(t *testing.T) {
	b, err := os.ReadFile("../tools/jaeger/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\tgithub.com/jaegertracing/jaeger "+JaegerVersion+" ") {
		t.Errorf("tools/jaeger/go.mod does not require github.com/jaegertracing/jaeger %s", JaegerVersion)
	}
}
