// Package hugepage allocates large buffers on huge-page boundaries.
//
// A kernel that backs anonymous memory with transparent huge pages by
// itself (/sys/kernel/mm/transparent_hugepage/enabled = always) can then
// back a whole buffer with them: fewer page faults on first touch and fewer
// TLB misses. Make does not ask for them with madvise(MADV_HUGEPAGE): with
// the kernel's default defrag setting a fault in advised memory waits for
// a huge page to be found or made, which stalls (the Go runtime stopped
// advising for this reason, golang/go#61718), and on the benchmark VM the
// huge pages it got were memory the host had taken back: reading a 506 MB
// model into advised memory took 0.8–5.5 s against 0.3 s without the
// advice (docs/design.md). Make returns ordinary Go memory; the garbage
// collector frees it as usual.
package hugepage

import "unsafe"

// Elem is the element types Make allocates: no pointers, so the memory
// needs no scanning.
type Elem interface {
	~byte | ~uint16 | ~uint32 | ~int32 | ~float32 | ~float64 | ~int | ~int64 | ~uint64
}

// Size is the huge page size assumed for alignment.
const Size = 2 << 20

// minBytes is the smallest buffer Make aligns: below it the up to Size of
// padding costs more address space than huge pages could save.
const minBytes = Size

// Make returns a zeroed slice of n elements, like make([]T, n).
func Make[T Elem](n int) []T {
	var zero T
	es := int(unsafe.Sizeof(zero))
	if n*es < minBytes {
		return make([]T, n)
	}
	// Pad by a huge page so that the slice can start on a boundary; the
	// padding is never touched, so it costs address space only.
	raw := make([]T, n+Size/es)
	base := uintptr(unsafe.Pointer(&raw[0]))
	skip := int((Size - base%Size) % Size / uintptr(es))
	return raw[skip : skip+n : skip+n]
}
