package stack

import (
	"net"
	"os"
	"strings"
	"testing"
)

// A taken port is named with its variable and, from /proc, its process.
func TestCheckFreeNamesTheAddressAndTheProcess(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = checkFree([][2]string{{"ULTRAMCP_API_ADDR", ln.Addr().String()}})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()+" is already in use") || !strings.Contains(err.Error(), "ULTRAMCP_API_ADDR") {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat("/proc/net/tcp"); statErr == nil && !strings.Contains(err.Error(), "pid ") {
		t.Errorf("the process is not named: %v", err)
	}
	ln.Close()
	if err := checkFree([][2]string{{"ULTRAMCP_API_ADDR", ln.Addr().String()}}); err != nil {
		t.Errorf("a free address: %v", err)
	}
}
