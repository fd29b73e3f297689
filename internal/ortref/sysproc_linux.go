package ortref

import "syscall"

// sysProcAttr makes the kernel kill node if the Go process dies without
// closing the Runner.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
