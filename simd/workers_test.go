package simd

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallel: every part runs exactly once, for any threads and parts,
// from concurrent callers, after the workers have parked, and a panic in a
// part reaches the caller.
func TestParallel(t *testing.T) {
	check := func(threads, parts int) {
		counts := make([]atomic.Int32, parts)
		Parallel(threads, parts, func(p int) { counts[p].Add(1) })
		for p := range counts {
			if c := counts[p].Load(); c != 1 {
				t.Fatalf("threads=%d parts=%d: part %d ran %d times", threads, parts, p, c)
			}
		}
	}
	for threads := 0; threads <= 5; threads++ {
		for parts := 0; parts <= 9; parts++ {
			check(threads, parts)
		}
	}
	time.Sleep(2 * spinFor) // let the workers park
	check(3, 7)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				check(1+g%4, 1+i%9)
			}
		}()
	}
	wg.Wait()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the part's panic", r)
			}
		}()
		Parallel(3, 6, func(p int) {
			if p == 4 {
				panic("boom")
			}
		})
	}()
	check(3, 7) // the pool still works after a panic
}
