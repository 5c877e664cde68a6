package stack

import (
	"fmt"
	"net"

	"github.com/ultramcp/durable/config"
)

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// EphemeralConfig returns a configuration for a throwaway stack in home with
// every listener on a free loopback port, for tests, benchmarks and verify;
// several can run side by side.
func EphemeralConfig(home string) (config.Config, error) {
	c := config.Default()
	c.Home = home
	for _, addr := range []*string{&c.IngressAddr, &c.AdminAddr, &c.NodeAddr, &c.ServiceAddr, &c.APIAddr} {
		a, err := FreeAddr()
		if err != nil {
			return c, fmt.Errorf("pick a free port: %w", err)
		}
		*addr = a
	}
	return c, c.Validate()
}
