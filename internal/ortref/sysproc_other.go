//go:build !linux

package ortref

import "syscall"

// sysProcAttr returns nil: outside Linux, node exits when its stdin closes.
func sysProcAttr() *syscall.SysProcAttr { return nil }
