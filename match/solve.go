package match

import (
	"sync/atomic"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// dot64 is Σ a[i]·b[i] in float64.
func dot64(a, b []float32) float64 { return simd.DotF64(a, b) }

// addWidened adds src to dst element by element in float64, on up to
// threads goroutines for long slices (a group's n×n cost is summed over its
// sites this way; on one core that was a serial stretch of every product).
func addWidened(dst []float64, src []float32, threads int) {
	dst = dst[:len(src)]
	sitelayout.InParallel(len(src), min(threads, len(src)>>18+1), func(lo, hi int) {
		d := dst[lo:hi]
		for i, v := range src[lo:hi] {
			d[i] += float64(v)
		}
	})
}

// assignment is the outcome of one assignment solve.
type assignment struct {
	perm  []int
	total float64
	duals []float64 // column duals, to warm-start the group's next solve
	err   error
}

// solveAssignment solves with solver, warm-started from prev and duals
// when both are given. The result depends on the arguments alone, not on
// the solver's history, so any solver may do a given group's solve.
func solveAssignment(solver *lap.Solver, n int, cost []float64, prev []int, duals []float64) assignment {
	var r assignment
	if prev == nil || duals == nil {
		r.perm, r.total, r.err = solver.Solve(n, cost)
	} else {
		r.perm, r.total, r.err = solver.SolveWarm(n, cost, prev, duals)
	}
	if r.err == nil {
		_, r.duals = solver.Duals()
	}
	return r
}

// solveQueue runs assignment solves on goroutines, each with a solver of
// its own, and hands out their results by group. A solve may first
// compute its group's cost (startAhead).
type solveQueue struct {
	pending map[int]*queuedSolve
	free    []*queueWorker
	running *atomic.Int32 // solves in progress
}

// queueWorker is what one goroutine of the queue works with, kept for the
// next.
type queueWorker struct {
	solver  lap.Solver
	scratch costScratch
}

type queuedSolve struct {
	version int           // of the group's cost that is solved
	costed  chan struct{} // closed once the cost is computed
	done    chan struct{}
	worker  *queueWorker
	result  assignment
}

func newSolveQueue(running *atomic.Int32) *solveQueue {
	return &solveQueue{pending: map[int]*queuedSolve{}, running: running}
}

// start solves group g's assignment (see solveAssignment) on a goroutine.
// Until take(g), cost, prev and duals must not change.
func (q *solveQueue) start(g, version, n int, cost []float64, prev []int, duals []float64) {
	q.startAhead(g, n, prev, duals, func(*costScratch) (int, []float64) { return version, cost })
}

// startAhead is start with the cost and its version computed first, on
// the same goroutine, by cost with the worker's scratch. Until
// waitCost(g), the descent must not change what cost reads.
func (q *solveQueue) startAhead(g, n int, prev []int, duals []float64, cost func(*costScratch) (int, []float64)) {
	w := &queueWorker{}
	if k := len(q.free); k > 0 {
		w, q.free = q.free[k-1], q.free[:k-1]
	}
	qs := &queuedSolve{costed: make(chan struct{}), done: make(chan struct{}), worker: w}
	q.pending[g] = qs
	// A core is held from the cost on (see matcher.gemmWorkers).
	q.running.Add(1)
	go func() {
		defer close(qs.done)
		if aheadCostDelay > 0 {
			time.Sleep(aheadCostDelay)
		}
		version, c := cost(&w.scratch)
		qs.version = version
		close(qs.costed)
		qs.result = solveAssignment(&w.solver, n, c, prev, duals)
		q.running.Add(-1)
	}()
}

// aheadCostDelay holds back every queued cost by this long, so that tests
// can check that the descent waits for it where it must.
var aheadCostDelay time.Duration

// waitCost waits until the costs of the queued groups among groups are
// computed.
func (q *solveQueue) waitCost(groups []int) {
	for _, g := range groups {
		if qs := q.pending[g]; qs != nil {
			<-qs.costed
		}
	}
}

// waitCosts waits until every queued cost is computed.
func (q *solveQueue) waitCosts() {
	for _, qs := range q.pending {
		<-qs.costed
	}
}

// take waits for group g's solve and returns it, or returns nil if none
// was started.
func (q *solveQueue) take(g int) *queuedSolve {
	qs := q.pending[g]
	if qs == nil {
		return nil
	}
	<-qs.done
	delete(q.pending, g)
	q.free = append(q.free, qs.worker)
	return qs
}

func (q *solveQueue) has(g int) bool { return q.pending[g] != nil }

func (q *solveQueue) len() int { return len(q.pending) }

// drain waits for every solve in the queue.
func (q *solveQueue) drain() {
	for g := range q.pending {
		q.take(g)
	}
}
