// Package hugepage allocates large buffers that the kernel may back with
// transparent huge pages.
//
// Linux commonly enables transparent huge pages only for memory that asks
// for them (/sys/kernel/mm/transparent_hugepage/enabled = madvise), and the
// Go heap does not ask. Touching fresh memory then costs a page fault per
// 4 KiB, which dominates on some virtual machines: about 50 times the cost
// per MiB of huge pages (docs/design.md gives the measurement). Make returns ordinary Go memory (the
// garbage collector frees it as usual), aligned to and advised for huge
// pages when it is large enough for that to matter.
package hugepage

import "unsafe"

// Elem is the element types Make allocates: no pointers, so the memory
// needs no scanning.
type Elem interface {
	~byte | ~uint16 | ~uint32 | ~int32 | ~float32 | ~float64 | ~int | ~int64 | ~uint64
}

// Size is the huge page size assumed for alignment.
const Size = 2 << 20

// minBytes is the smallest buffer Make aligns and advises: below it the
// up to Size of padding costs more address space than it saves faults.
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
	s := raw[skip : skip+n : skip+n]
	advise(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), (n*es)/Size*Size))
	return s
}
