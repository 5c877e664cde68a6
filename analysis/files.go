package analysis

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrNotRegular is returned for a path that is a link, a FIFO, a device or
// anything else but a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned for a file over the size a scanner reads.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads the regular file at path and at most max bytes of it. It
// never follows a symbolic link (a link to a host file would leak it) and
// never blocks on a FIFO or reads a device (a link to /dev/zero would fill
// memory): every scanner reads a checkout's files through it.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%w: a symbolic link", ErrNotRegular)
		}
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, ErrNotRegular
	}
	if info.Size() > max {
		return nil, ErrTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}
