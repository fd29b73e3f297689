//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LockDir takes an exclusive lock on the folder dir (flock), waiting for
// it, for steps that must not interleave with another process's (the
// renames of a model and its data file). The lock is advisory: it orders
// the writers that take it, readers need none. Where the folder cannot be
// opened for reading or its file system has no flock, it does nothing:
// the writers are then not ordered, but they still work.
func LockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return func() {}, nil
		}
		return nil, err
	}
	for {
		err = unix.Flock(int(d.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err == nil {
		return func() { d.Close() }, nil // closing releases the lock
	}
	d.Close()
	if err == unix.ENOTSUP || err == unix.EOPNOTSUPP || err == unix.ENOLCK || err == unix.EINVAL {
		return func() {}, nil
	}
	return nil, fmt.Errorf("%s: locking the folder: %w", dir, err)
}
