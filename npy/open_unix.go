//go:build unix

package npy

import "syscall"

// openNonblock makes opening a FIFO return at once instead of waiting for
// a writer, so that it can be refused.
const openNonblock = syscall.O_NONBLOCK
