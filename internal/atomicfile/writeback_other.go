//go:build !linux

package atomicfile

import "os"

// startWriteback does nothing where sync_file_range does not exist; the
// final Sync writes everything.
func startWriteback(f *os.File, off, n int64) {}
