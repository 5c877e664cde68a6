// Package version says which build of UltraMCP a binary is: the VCS
// revision it was built from (with "-dirty" and a digest of the binary when
// the tree had changes), else a digest of the executable. A version names a
// deployment: each is registered with Restate on its own address, and a
// workflow stays on the version it started on until it ends.
package version

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
)

var (
	once    sync.Once
	current string
)

// Current is the version of the running binary.
func Current() string {
	once.Do(func() {
		exe, err := os.Executable()
		if err == nil {
			current, err = OfFile(exe)
		}
		if err != nil {
			// No executable to read (a test binary without its file):
			// the build info the runtime has is all there is.
			info, _ := debug.ReadBuildInfo()
			current = fromInfo(info, "")
		}
	})
	return current
}

// OfFile is the version of the binary at path. A clean build is named by
// its revision alone, read from the binary's build info; others by the
// digest of their content too, computed once per file state.
func OfFile(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	// By file, not by path: a kept copy is a hard link of the build.
	key := fmt.Sprintf("%s|%d|%d", path, st.Size(), st.ModTime().UnixNano())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		key = fmt.Sprintf("%d:%d|%d|%d", sys.Dev, sys.Ino, st.Size(), st.ModTime().UnixNano())
	}
	if v, ok := seen.Load(key); ok {
		return v.(string), nil
	}
	info, infoErr := buildinfo.ReadFile(path)
	v := ""
	if infoErr == nil {
		v = fromInfo(info, "")
	}
	if infoErr != nil || v == "unknown" || strings.HasSuffix(v, "-dirty") {
		digest, err := fileDigest(path)
		if err != nil {
			return "", err
		}
		if infoErr != nil {
			v = "exe-" + digest // no build info: its content names it
		} else {
			v = fromInfo(info, digest)
		}
	}
	seen.Store(key, v)
	return v, nil
}

// seen caches OfFile by path, size and modification time.
var seen sync.Map

// fromInfo names a build by its revision; a tree with changes is told
// apart by the binary's digest, since two such builds share a revision.
func fromInfo(info *debug.BuildInfo, digest string) string {
	var rev string
	modified := false
	if info != nil {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	switch {
	case rev == "" && digest == "":
		return "unknown"
	case rev == "":
		return "exe-" + digest
	case len(rev) > 12:
		rev = rev[:12]
	}
	if modified {
		if digest == "" {
			return rev + "-dirty"
		}
		return rev + "-dirty-" + digest[:8]
	}
	return rev
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
