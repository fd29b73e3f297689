//go:build !linux

package atomicfile

import (
	"errors"
	"os"
)

// startWriteback does nothing where sync_file_range does not exist; the
// final Sync writes everything.
func startWriteback(f *os.File, off, n int64) {}

// setDirect: direct I/O is used on Linux only.
func setDirect(f *os.File, on bool) error { return errors.ErrUnsupported }
