package infer

import "github.com/onnx-rebasin/onnx-rebasin/simd"

// parallelFor calls fn on disjoint ranges [lo, hi) that cover [0, n), using at
// most threads goroutines (the caller's included). Ranges hold at least
// grain items, so that tiny loops stay on one goroutine.
//
// Results never depend on how [0, n) is split: every kernel computes each
// output element in one call and with a fixed order of operations, so the
// interpreter is deterministic whatever the thread count.
func parallelFor(threads, n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	if serial(threads, n, grain) {
		fn(0, n)
		return
	}
	// Up to four pieces per thread, claimed dynamically, so that a thread
	// slowed down (a shared core) does less of the work; simd's pool of
	// spinning workers starts a parallel phase in about a microsecond, not
	// the tens of microseconds of waking a parked thread. A worker's panic
	// is re-raised here, where Run turns it into an error.
	parts := min(4*threads, n/grain)
	simd.Parallel(threads, parts, func(p int) {
		fn(p*n/parts, (p+1)*n/parts)
	})
}

// serial reports whether parallelFor(threads, n, grain, …) would run on
// the calling goroutine alone: hot call sites then call their kernel
// directly, since a closure passed to parallelFor is heap-allocated.
func serial(threads, n, grain int) bool {
	return threads <= 1 || n < 2*max(grain, 1)
}
