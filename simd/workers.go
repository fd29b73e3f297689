package simd

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A small pool of worker goroutines that spin for a while after each task
// before they park. Starting goroutines per parallel phase (and the futex
// wake-up of an idle thread behind it) costs 10–50 µs, as much as a whole
// batch-1 convolution: an interpreter run issues
// hundreds of short parallel phases back to back, and a worker that is
// still spinning picks the next one up within a microsecond. ONNX Runtime's
// thread pool spins the same way.

// spinFor is how long an idle worker polls for new work before parking.
const spinFor = 100 * time.Microsecond

type poolJob struct {
	fn    func(part int)
	parts int32
	next  atomic.Int32 // next part to claim
	done  atomic.Int32 // parts finished
	pmu   sync.Mutex
	panic any // the first panic of a part, re-raised by Parallel's caller
}

// run claims and runs parts until none is left.
func (j *poolJob) run() {
	for {
		p := j.next.Add(1) - 1
		if p >= j.parts {
			return
		}
		j.runPart(int(p))
	}
}

func (j *poolJob) runPart(p int) {
	defer func() {
		if r := recover(); r != nil {
			j.pmu.Lock()
			if j.panic == nil {
				j.panic = r
			}
			j.pmu.Unlock()
		}
		j.done.Add(1)
	}()
	j.fn(p)
}

type poolWorker struct {
	slot     atomic.Pointer[poolJob]
	sleeping atomic.Bool
	wake     chan struct{}
}

var pool struct {
	mu      sync.Mutex
	workers []*poolWorker
}

func (w *poolWorker) loop() {
	for {
		deadline := time.Now().Add(spinFor)
		for spins := 0; ; spins++ {
			if j := w.slot.Swap(nil); j != nil {
				j.run()
				deadline = time.Now().Add(spinFor)
				continue
			}
			relax()
			if spins&63 == 63 {
				if time.Now().After(deadline) {
					break
				}
				runtime.Gosched()
			}
		}
		// Park: announce it, then look once more so that a job stored
		// just before the announcement is not missed.
		w.sleeping.Store(true)
		if j := w.slot.Swap(nil); j != nil {
			if !w.sleeping.CompareAndSwap(true, false) {
				<-w.wake // a dispatcher saw us asleep and sent a token
			}
			j.run()
			continue
		}
		<-w.wake
	}
}

// offer puts j in w's slot, waking w if it sleeps. A slot may still hold
// an earlier job whose parts all went to other goroutines: a worker woken
// for a short phase often runs only after its caller has done every part,
// and a later phase (the product after the packing) found the slot taken
// and went without the worker, which then slept again. Such a job is
// replaced. A worker whose slot holds a job with parts left is busy for a
// concurrent caller and is skipped: the caller and the others run its
// share.
func (w *poolWorker) offer(j *poolJob) {
	for {
		old := w.slot.Load()
		if old != nil && old.next.Load() < old.parts {
			return
		}
		if w.slot.CompareAndSwap(old, j) {
			if w.sleeping.CompareAndSwap(true, false) {
				w.wake <- struct{}{}
			}
			return
		}
	}
}

// workers returns n pool workers, starting them the first time.
func workers(n int) []*poolWorker {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	for len(pool.workers) < n {
		w := &poolWorker{wake: make(chan struct{}, 1)}
		pool.workers = append(pool.workers, w)
		go w.loop()
	}
	return pool.workers[:n]
}

// Parallel calls fn(0), …, fn(parts-1), on the calling goroutine and at
// most threads-1 pool workers, and returns when all calls have returned.
// Which goroutine runs which part is not fixed, so fn must give the same
// result whichever runs it. A panic in fn is re-raised on the caller.
func Parallel(threads, parts int, fn func(part int)) {
	if parts <= 0 {
		return
	}
	helpers := min(threads, parts) - 1
	if helpers <= 0 {
		for p := 0; p < parts; p++ {
			fn(p)
		}
		return
	}
	j := &poolJob{fn: fn, parts: int32(parts)}
	ws := workers(helpers)
	for _, w := range ws {
		w.offer(j)
	}
	j.run()
	for spins := 0; j.done.Load() < j.parts; spins++ {
		relax()
		if spins&63 == 63 {
			runtime.Gosched()
		}
	}
	// Workers that never claimed a part may still hold j in their slot
	// and find it exhausted later; that is harmless.
	if j.panic != nil {
		panic(j.panic)
	}
}
