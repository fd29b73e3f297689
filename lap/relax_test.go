package lap

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
)

// The kernel tests run the vector kernels on slices that sit inside larger
// buffers, as package simd's tests do: the guardLen entries on each side
// hold values that would change the result if a kernel read them (-Inf
// where a smaller value wins, +Inf in the costs, whose difference is taken)
// and must be unchanged after it ran.
const guardLen = 8

// guarded is a slice of n entries inside a buffer with guard zones.
type guarded[T comparable] struct {
	buf   []T
	guard T
}

func newGuarded[T comparable](x []T, guard T) *guarded[T] {
	g := &guarded[T]{buf: make([]T, len(x)+2*guardLen), guard: guard}
	for i := range g.buf {
		g.buf[i] = guard
	}
	copy(g.s(), x)
	return g
}

// s is the slice between the guard zones.
func (g *guarded[T]) s() []T { return g.buf[guardLen : len(g.buf)-guardLen : len(g.buf)-guardLen] }

// check fails the test if a guard entry changed.
func (g *guarded[T]) check(t *testing.T, what string) {
	t.Helper()
	n := len(g.buf) - 2*guardLen
	for i, v := range g.buf {
		if (i < guardLen || i >= guardLen+n) && v != g.guard {
			t.Fatalf("%s: guard entry %d (of %d + 2×%d) overwritten with %v", what, i, n, guardLen, v)
		}
	}
}

var negInf, posInf = math.Inf(-1), math.Inf(1)

// TestRelaxKernelsAgree checks the vector kernel against the portable loop
// on random inputs, including finalised (+Inf) columns, ties and every
// length mod 4, and that whole solves are bit-identical either way.
// requireVectorKernels skips a test of the vector kernels in a build without
// them (-tags noasm, not amd64), where the portable loops are the only path;
// a CPU without AVX2 under a build that has them fails under CI and skips
// elsewhere, since CI must test the kernels it ships.
func requireVectorKernels(t *testing.T) {
	t.Helper()
	if !vectorBuild {
		t.Skip("built without the vector kernels (-tags noasm or not amd64): the portable loops are the only path")
	}
	if !useAVX2 {
		testreq.Missing(t, "this CPU has no AVX2: the vector kernels cannot run")
	}
}

func TestRelaxKernelsAgree(t *testing.T) {
	requireVectorKernels(t)
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + r.IntN(70)
		row, v, d := make([]float64, n), make([]float64, n), make([]float64, n)
		pred := make([]int32, n)
		for k := range row {
			// Few distinct values, so ties are common.
			row[k] = float64(r.IntN(5))
			v[k] = float64(r.IntN(5))
			d[k] = float64(r.IntN(8))
			pred[k] = int32(r.IntN(9))
			if r.IntN(4) == 0 {
				v[k], d[k] = inf, inf
			}
		}
		off := float64(r.IntN(5)) - 2
		gRow, gV := newGuarded(row, posInf), newGuarded(v, negInf)
		gD, gPred := newGuarded(d, negInf), newGuarded(pred, int32(-5))
		b1, k1 := relaxGeneric(row, v, d, pred, 7, off, 0, inf, -1)
		b2, k2 := relaxVector(gRow.s(), gV.s(), gD.s(), gPred.s(), 7, off)
		if b1 != b2 || k1 != k2 || !slices.Equal(d, gD.s()) || !slices.Equal(pred, gPred.s()) {
			t.Fatalf("n=%d: generic (%v,%d) vs vector (%v,%d)", n, b1, k1, b2, k2)
		}
		gRow.check(t, "row")
		gV.check(t, "v")
		gD.check(t, "d")
		gPred.check(t, "pred")
	}
}

func TestTwoMinKernelsAgree(t *testing.T) {
	requireVectorKernels(t)
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 3000; trial++ {
		n := 8 + r.IntN(70)
		row, v := make([]float64, n), make([]float64, n)
		for k := range row {
			row[k] = float64(r.IntN(6))
			v[k] = float64(r.IntN(6))
			if trial%3 == 0 {
				row[k] = r.Float64()
			}
		}
		gRow, gV := newGuarded(row, posInf), newGuarded(v, negInf)
		a1, b1, c1, d1 := twoMinGeneric(row, v, 0, inf, -1, inf, -1)
		a2, b2, c2, d2 := twoMinVector(gRow.s(), gV.s())
		if a1 != a2 || b1 != b2 || c1 != c2 || d1 != d2 {
			t.Fatalf("n=%d: generic (%v,%d,%v,%d) vs vector (%v,%d,%v,%d)", n, a1, b1, c1, d1, a2, b2, c2, d2)
		}
		gRow.check(t, "row")
		gV.check(t, "v")
	}
}

func TestColMaxKernelsAgree(t *testing.T) {
	requireVectorKernels(t)
	r := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 1000; trial++ {
		n := 8 + r.IntN(70)
		vmax1, arg1 := make([]float64, n), make([]int32, n)
		for k := range vmax1 {
			vmax1[k] = float64(r.IntN(4))
			arg1[k] = int32(r.IntN(5))
		}
		gVmax, gArg := newGuarded(vmax1, negInf), newGuarded(arg1, int32(-5))
		for i := int32(0); i < 5; i++ {
			row := make([]float64, n)
			for k := range row {
				row[k] = float64(r.IntN(5))
				if trial%2 == 0 {
					row[k] = r.NormFloat64() * 1e150
				}
			}
			gRow := newGuarded(row, posInf)
			var acc [4]float64
			s1 := colMaxGeneric(row, vmax1, arg1, i, 0, &acc)
			s2 := colMax(gRow.s(), gVmax.s(), gArg.s(), i)
			if s1 != s2 && !(s1 != s1 && s2 != s2) || !slices.Equal(vmax1, gVmax.s()) || !slices.Equal(arg1, gArg.s()) {
				t.Fatalf("n=%d row %d: generic %v vs vector %v", n, i, s1, s2)
			}
			gRow.check(t, "row")
			gVmax.check(t, "vmax")
			gArg.check(t, "arg")
		}
	}
}

func TestRowMinKernelsAgree(t *testing.T) {
	requireVectorKernels(t)
	r := rand.New(rand.NewPCG(9, 10))
	for trial := 0; trial < 2000; trial++ {
		n := 8 + r.IntN(70)
		row, v := make([]float64, n), make([]float64, n)
		for k := range row {
			row[k], v[k] = float64(r.IntN(5)), float64(r.IntN(5))
			if trial%2 == 0 {
				row[k] = r.NormFloat64()
			}
		}
		gRow, gV := newGuarded(row, posInf), newGuarded(v, negInf)
		var acc [4]float64
		b1, j1, s1 := rowMinGeneric(row, v, 0, inf, -1, &acc)
		b2, j2, s2 := rowMin(gRow.s(), gV.s())
		gRow.check(t, "row")
		gV.check(t, "v")
		if b1 != b2 || j1 != j2 || s1 != s2 {
			t.Fatalf("n=%d: generic (%v,%d,%v) vs vector (%v,%d,%v)", n, b1, j1, s1, b2, j2, s2)
		}
	}
}

func TestSolveSameWithAndWithoutVectorKernel(t *testing.T) {
	requireVectorKernels(t)
	defer func() { useAVX2 = true }()
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{5, 33, 200, 301} {
		for _, ints := range []bool{false, true} {
			cost := make([]float64, n*n)
			for k := range cost {
				if ints {
					cost[k] = float64(r.IntN(4))
				} else {
					cost[k] = r.NormFloat64()
				}
			}
			var s Solver
			useAVX2 = true
			p1, t1, err1 := s.Solve(n, cost)
			useAVX2 = false
			p2, t2, err2 := s.Solve(n, cost)
			if err1 != nil || err2 != nil || t1 != t2 || !slices.Equal(p1, p2) {
				t.Fatalf("n=%d ints=%v: vector and portable solves differ (%v vs %v)", n, ints, t1, t2)
			}
		}
	}
}
