package hugepage

import "syscall"

// advise asks for huge pages on b (whole huge pages, aligned). It is only a
// hint: errors (an old kernel, huge pages disabled) change nothing.
func advise(b []byte) {
	if len(b) > 0 {
		_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
	}
}
