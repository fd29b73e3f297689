//go:build unix

package atomicfile

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LockDir takes an exclusive lock on the folder dir (flock), waiting for
// it, for steps that must not interleave with another process's (the
// renames of a model and its data file). The lock is advisory: it orders
// the writers that take it, readers need none.
func LockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(d.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("%s: locking the folder: %w", dir, err)
	}
	return func() { d.Close() }, nil // closing releases the lock
}
