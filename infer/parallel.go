package infer

import "sync"

// parallelFor calls fn on disjoint ranges [lo, hi) that cover [0, n), using at
// most threads goroutines (the caller's included). Ranges hold at least
// grain items (except the last), so that tiny loops stay on one goroutine.
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
	parts := threads
	if maxParts := (n + grain - 1) / grain; parts > maxParts {
		parts = maxParts
	}
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	var once sync.Once
	var panicked any
	wg.Add(parts - 1)
	for p := 1; p < parts; p++ {
		lo, hi := p*n/parts, (p+1)*n/parts
		go func() {
			defer wg.Done()
			defer func() {
				// Hand a worker's panic to the calling goroutine, where Run
				// turns it into an error.
				if r := recover(); r != nil {
					once.Do(func() { panicked = r })
				}
			}()
			fn(lo, hi)
		}()
	}
	fn(0, n/parts)
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
}
