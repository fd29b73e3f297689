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

// TestOfferReplacesExhaustedJob: a job whose parts were all claimed (its
// caller ran them before the woken worker took it) no longer holds the
// worker's slot: the next job replaces it, and a sleeping worker is woken
// once. A job with parts left stays, for the worker to run.
func TestOfferReplacesExhaustedJob(t *testing.T) {
	w := &poolWorker{wake: make(chan struct{}, 1)}
	exhausted := &poolJob{parts: 2}
	exhausted.next.Store(2)
	w.slot.Store(exhausted)
	w.sleeping.Store(true)
	next := &poolJob{parts: 2}
	w.offer(next)
	if w.slot.Load() != next {
		t.Fatal("a job whose parts were all claimed kept the slot")
	}
	if len(w.wake) != 1 || w.sleeping.Load() {
		t.Fatalf("sleeping worker not woken: %d tokens, sleeping %v", len(w.wake), w.sleeping.Load())
	}
	w.offer(&poolJob{parts: 2})
	if w.slot.Load() != next {
		t.Fatal("a job with parts left was replaced")
	}
	if len(w.wake) != 1 {
		t.Fatalf("%d wake tokens, want 1", len(w.wake))
	}
}
