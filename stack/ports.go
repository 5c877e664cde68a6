package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ultramcp/durable/retry"
)

// checkFree reports the first of addrs (variable → address) already taken,
// saying by which process when this machine tells, and which variable moves
// it: better than twenty lines of the server's log.
func checkFree(addrs [][2]string) error {
	for _, a := range addrs {
		variable, addr := a[0], a[1]
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			continue
		}
		who := ""
		if owner := portOwner(addr); owner != "" {
			who = " by " + owner
		}
		return fmt.Errorf("%s is already in use%s: stop that process or set %s to a free address", addr, who, variable)
	}
	return nil
}

// waitFree waits, at most timeout, until every one of addrs can be
// listened on, unless a process listens on one: that is no moment's
// leftover, and the start that follows says whose it is.
func waitFree(ctx context.Context, addrs [][2]string, timeout time.Duration) {
	// Polled every 50 ms: a killed process's port is free again within
	// moments, once the kernel has closed its sockets.
	_, _ = retry.Poll(50*time.Millisecond, timeout).Do(ctx, func(context.Context) error {
		for _, a := range addrs {
			if checkFree([][2]string{a}) != nil && portOwner(a[1]) == "" {
				return retry.Again("%s is not free yet", a[1])
			}
		}
		return nil
	})
}

// portOwner names the process listening on addr's port, from /proc: its
// socket's inode in /proc/net/tcp{,6}, then the process holding that inode.
func portOwner(addr string) string {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, _ := strconv.Atoi(portStr)
	want := fmt.Sprintf(":%04X", port)
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			// local_address is field 1, state 3 (0A is LISTEN), inode 9.
			if len(fields) > 9 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && inodes[target] {
				comm, _ := os.ReadFile(filepath.Join(p, "comm"))
				return fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), filepath.Base(p))
			}
		}
	}
	return ""
}
