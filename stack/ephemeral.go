package stack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/ultramcp/durable/config"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago. The port is picked below the kernel's range of ephemeral ports, the
// one outgoing connections take their source ports from: a port from that
// range (what listening on port 0 gives) can be taken by any connection
// the tests open before our process binds it, which made a stack fail to
// start now and then with "address already in use".
func FreeAddr() (string, error) {
	low := ephemeralLow()
	for range 64 {
		if low <= listenersFrom+1 {
			break
		}
		port := listenersFrom + rand.IntN(low-listenersFrom)
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			addr := ln.Addr().String()
			ln.Close()
			return addr, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// listenersFrom is the lowest port FreeAddr picks.
const listenersFrom = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return n
}

// EphemeralConfig returns a configuration for a throwaway stack in home with
// the service and the API on free loopback ports (Restate's sockets are in
// home), for tests, benchmarks and verify; several can run side by side.
func EphemeralConfig(home string) (config.Config, error) {
	c := config.Default()
	c.Home = home
	for _, addr := range []*string{&c.ServiceAddr, &c.APIAddr} {
		a, err := FreeAddr()
		if err != nil {
			return c, fmt.Errorf("pick a free port: %w", err)
		}
		*addr = a
	}
	return c, c.Validate()
}
