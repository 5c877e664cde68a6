package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ultramcp/durable/fault"
)

// Cache holds checkouts under Dir, one entry per repository and commit: a
// commit id alone is no key, since any server can advertise any id. An
// entry in use is held with a shared lock, so neither the size cap nor
// `purge` removes a tree while a scanner reads it.
type Cache struct {
	Dir    string
	Policy Policy
	// MaxBytes caps the whole cache; the least recently used entries not
	// in use go first. Zero means no cap.
	MaxBytes int64
}

// complete marks a finished checkout and holds its size and repository; a
// directory without it is a crashed fetch and is fetched again.
const complete = ".ultramcp-complete"

// Checkout is a tree of the cache, held against removal until Release.
type Checkout struct {
	Dir  string // the working tree
	lock *os.File
}

// Release lets the cache remove the tree again.
func (c *Checkout) Release() {
	if c != nil && c.lock != nil {
		_ = c.lock.Close() // closing drops the lock
		c.lock = nil
	}
}

// entryKey names the entry of sha fetched from repository.
func entryKey(repository, sha string) string {
	h := sha256.Sum256([]byte(repository))
	return hex.EncodeToString(h[:8]) + "-" + sha
}

// Ensure makes sure this host has the checkout of sha from repository and
// returns its tree, not held: the checkout step uses it.
func (c *Cache) Ensure(ctx context.Context, repository, sha string) (string, error) {
	co, err := c.Acquire(ctx, repository, sha)
	if err != nil {
		return "", err
	}
	co.Release()
	return co.Dir, nil
}

// Acquire returns the checkout of sha from repository, fetching it if this
// host lacks it, held until Release. Any step may call it: the repository
// and commit are all it needs.
func (c *Cache) Acquire(ctx context.Context, repository, sha string) (*Checkout, error) {
	if !shaRe.MatchString(sha) {
		return nil, fault.New(fault.Invalid, "commit %q is not a full sha", sha)
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "checkout cache")
	}
	key := entryKey(repository, sha)
	lock, err := lockFile(filepath.Join(c.Dir, key+".lock"), syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	co := &Checkout{Dir: filepath.Join(c.Dir, key, "tree"), lock: lock}
	dir := filepath.Join(c.Dir, key)
	marker := filepath.Join(dir, complete)
	if _, err := os.Stat(marker); err == nil {
		now := time.Now()
		_ = os.Chtimes(marker, now, now) // the LRU clock
		return co, nil
	}
	if err := c.fetch(ctx, repository, sha, dir); err != nil {
		co.Release()
		_, _ = c.remove(key) // its lock file, unless another step fetches it
		return nil, err
	}
	c.evict(key)
	return co, nil
}

var tmpSeq atomic.Int64

// fetch writes the checkout of sha into dir: the objects first, watched
// so that the download stops once it passes the limit; then their sizes
// counted, and only if they fit, the files.
func (c *Cache) fetch(ctx context.Context, repository, sha, dir string) error {
	p := c.Policy
	if err := os.RemoveAll(dir); err != nil {
		return fault.Wrap(fault.Internal, err, "checkout cache")
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d-%d", dir, os.Getpid(), time.Now().UnixNano(), tmpSeq.Add(1))
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	if err := os.MkdirAll(tree, 0o700); err != nil {
		return fault.Wrap(fault.Internal, err, "checkout cache")
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	r, err := p.prepare(ctx, repository)
	if err != nil {
		return err
	}
	depth := max(p.HistoryDepth, 1)
	if _, err := p.git(ctx, tree, nil, "init", "--quiet", "--template=", "."); err != nil {
		return err
	}
	if err := p.watchSize(ctx, tmp, func(ctx context.Context) error {
		_, err := p.git(ctx, tree, &r, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", fmt.Sprintf("--depth=%d", depth), "--", r.url, sha)
		return err
	}); err != nil {
		return err
	}
	size, err := p.checkSizes(ctx, tree, sha)
	if err != nil {
		return err
	}
	// The history scan runs git in the checkout later: it must see large
	// file versions as binary there too.
	if _, err := p.git(ctx, tree, nil, "config", "core.bigFileThreshold", strconv.Itoa(MaxHistoryBlob)); err != nil {
		return err
	}
	if _, err := p.git(ctx, tree, nil, "checkout", "--quiet", "--detach", sha); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, complete), []byte(strconv.FormatInt(size, 10)+"\n"+repository+"\n"), 0o600); err != nil {
		return fault.Wrap(fault.Internal, err, "checkout cache")
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, complete)); statErr == nil {
			return nil // another step won the race
		}
		return fault.Wrap(fault.Internal, err, "checkout cache")
	}
	return nil
}

// watchSize runs fetch and stops it as soon as dir grows past the limit:
// a pack is written as it arrives, so its size is known only by watching.
func (p Policy) watchSize(ctx context.Context, dir string, fetch func(context.Context) error) error {
	if p.MaxBytes <= 0 {
		return fetch(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var over atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if n, _ := dirSize(dir); n > p.MaxBytes {
					over.Store(n)
					cancel()
					return
				}
			}
		}
	}()
	err := fetch(ctx)
	cancel()
	<-done
	if n := over.Load(); n > 0 {
		return fault.New(fault.Invalid, "repository too large: the download passed %s before it was stopped, the limit is %s", mb(n), mb(p.MaxBytes))
	}
	return err
}

// checkSizes counts what the fetched objects expand to: the files of the
// commit (what a checkout writes) and every file version of the fetched
// history (what the history scan reads). Both must fit the limit. It
// returns the commit's size.
func (p Policy) checkSizes(ctx context.Context, tree, sha string) (int64, error) {
	out, err := p.git(ctx, tree, nil, "ls-tree", "-r", "-l", "-z", "--full-tree", sha)
	if err != nil {
		return 0, err
	}
	var files int64
	for _, entry := range strings.Split(string(out), "\x00") {
		meta, _, _ := strings.Cut(entry, "\t")
		f := strings.Fields(meta)
		if len(f) == 4 && f[1] == "blob" {
			n, _ := strconv.ParseInt(f[3], 10, 64)
			files += n
		}
	}
	out, err = p.git(ctx, tree, nil, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize)")
	if err != nil {
		return 0, err
	}
	var history, largest int64
	for _, line := range strings.Split(string(out), "\n") {
		if kind, size, ok := strings.Cut(line, " "); ok && kind == "blob" {
			n, _ := strconv.ParseInt(size, 10, 64)
			history += n
			largest = max(largest, n)
		}
	}
	if p.MaxBytes > 0 && files > p.MaxBytes {
		return 0, fault.New(fault.Invalid, "repository too large: the files of commit %s take %s, the limit is %s", sha[:12], mb(files), mb(p.MaxBytes))
	}
	if p.MaxBytes > 0 && history > p.MaxBytes {
		return 0, fault.New(fault.Invalid, "repository too large: its history holds %s of file versions (the largest %s), the limit is %s", mb(history), mb(largest), mb(p.MaxBytes))
	}
	return files, nil
}

func mb(n int64) string {
	if n < 10<<20 {
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d MB", n>>20)
}

// lockFile opens (creating) path and takes how (LOCK_SH or LOCK_EX, maybe
// with LOCK_NB) on it.
func lockFile(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "checkout cache lock")
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

type entry struct {
	key   string
	size  int64
	mtime time.Time
}

// entries lists the complete checkouts of the cache.
func (c *Cache) entries() []entry {
	des, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil
	}
	var out []entry
	for _, de := range des {
		if !de.IsDir() || strings.Contains(de.Name(), ".tmp-") {
			continue
		}
		marker := filepath.Join(c.Dir, de.Name(), complete)
		info, err := os.Stat(marker)
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(marker)
		first, _, _ := strings.Cut(string(b), "\n")
		size, _ := strconv.ParseInt(first, 10, 64)
		out = append(out, entry{key: de.Name(), size: size, mtime: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].mtime.Before(out[j].mtime) })
	return out
}

// remove deletes the entry unless a scanner holds it, and reports whether
// it did.
func (c *Cache) remove(key string) (bool, error) {
	lock, err := lockFile(filepath.Join(c.Dir, key+".lock"), syscall.LOCK_EX|syscall.LOCK_NB)
	if err != nil {
		return false, nil // in use
	}
	defer lock.Close()
	if err := os.RemoveAll(filepath.Join(c.Dir, key)); err != nil {
		return false, err
	}
	_ = os.Remove(lock.Name())
	return true, nil
}

// evict removes the least recently used entries but keep until the cache
// fits its cap.
func (c *Cache) evict(keep string) {
	if c.MaxBytes <= 0 {
		return
	}
	all := c.entries()
	var total int64
	for _, e := range all {
		total += e.size
	}
	for _, e := range all {
		if total <= c.MaxBytes {
			return
		}
		if e.key == keep {
			continue
		}
		if ok, _ := c.remove(e.key); ok {
			total -= e.size
		}
	}
}

// Prune removes checkouts last used before cutoff, and fetches that
// crashed before it, except those in use; it returns how many it removed.
func (c *Cache) Prune(cutoff time.Time) (int, error) {
	des, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, de := range des {
		name := de.Name()
		if !de.IsDir() {
			continue
		}
		if strings.Contains(name, ".tmp-") {
			if info, err := de.Info(); err == nil && info.ModTime().Before(cutoff) {
				_ = os.RemoveAll(filepath.Join(c.Dir, name))
			}
			continue
		}
		used := time.Time{}
		if info, err := os.Stat(filepath.Join(c.Dir, name, complete)); err == nil {
			used = info.ModTime()
		}
		if used.After(cutoff) {
			continue
		}
		ok, err := c.remove(name)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a fetch in progress renames files under us
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total, err
}
