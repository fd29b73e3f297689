package simd

import (
	"fmt"
	"hash/fnv"
	"math"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

var gemmSizes = []int{1, 2, 3, 5, 7, 13, 17, 31, 33, 64, 65, 100}

// logical is an m×k times k×n problem in logical (untransposed) form, with
// its float64 reference product and the magnitudes Σ|a||b| that bound the
// rounding error of any summation order.
type logical struct {
	m, n, k int
	a, b    []float32 // m×k and k×n, dense row-major
	ab, mag []float64 // m×n
}

func newLogical(m, n, k int, seed uint64) *logical {
	p := &logical{m: m, n: n, k: k}
	ga, gb := randVals(seed), randVals(seed+1)
	p.a = make([]float32, m*k)
	for i := range p.a {
		p.a[i] = ga(i)
	}
	p.b = make([]float32, k*n)
	for i := range p.b {
		p.b[i] = gb(i)
	}
	p.ab = make([]float64, m*n)
	p.mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for q := 0; q < k; q++ {
			av := float64(p.a[i*k+q])
			for j := 0; j < n; j++ {
				pr := av * float64(p.b[q*n+j])
				p.ab[i*n+j] += pr
				p.mag[i*n+j] += math.Abs(pr)
			}
		}
	}
	return p
}

// layout stores the rows×cols matrix get(r, c) row-major with leading
// dimension ld inside a guarded buffer whose row gaps hold the guard NaN,
// so that reading a gap poisons the result and writing one is detected.
func layout(rows, cols, ld, shift int, get func(r, c int) float32) *guarded {
	n := 0
	if rows > 0 && cols > 0 {
		n = (rows-1)*ld + cols
	}
	g := newGuarded(n, shift, func(int) float32 { return guard32 })
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			g.data[r*ld+c] = get(r, c)
		}
	}
	return g
}

// checkGaps verifies that the row gaps of an ld-strided matrix still hold
// the guard pattern.
func checkGaps(t *testing.T, what string, data []float32, cols, ld int) {
	t.Helper()
	for i, v := range data {
		if i%ld >= cols && math.Float32bits(v) != guardBits {
			t.Fatalf("%s: gap element %d overwritten: %v", what, i, v)
		}
	}
}

func checkUnchanged(t *testing.T, what string, before, after []float32) {
	t.Helper()
	for i := range before {
		if math.Float32bits(before[i]) != math.Float32bits(after[i]) {
			t.Fatalf("%s: input element %d modified", what, i)
		}
	}
}

type abVariant struct {
	alpha, beta float32
	nanC        bool // C starts as NaN: beta == 0 must not read it
}

var abVariants = []abVariant{
	{1, 1, false},
	{1, 0, true},
	{-0.5, 2, false},
	{2.5, -1, false},
	{0, 0.5, false},
	{0.75, 0, false},
}

// withAllWorkers lets tests run tiny products on several goroutines, to
// exercise the partitioning on every shape.
func withAllWorkers(t *testing.T) {
	old := minFlopsPerWorker
	minFlopsPerWorker = 0
	t.Cleanup(func() { minFlopsPerWorker = old })
}

func TestGemm(t *testing.T) {
	withAllWorkers(t)
	impls := available()
	caseNo := 0
	for _, m := range gemmSizes {
		for _, n := range gemmSizes {
			for _, k := range gemmSizes {
				p := newLogical(m, n, k, uint64(m*10000+n*100+k))
				for tr := 0; tr < 4; tr++ {
					transA, transB := tr&1 != 0, tr&2 != 0
					// Every variant on small shapes; a rotating one on the rest.
					vars := abVariants
					if m*n*k > 2000 {
						vars = abVariants[caseNo%len(abVariants) : caseNo%len(abVariants)+1]
					}
					for _, v := range vars {
						caseNo++
						runGemmCase(t, impls, p, transA, transB, v, caseNo)
					}
				}
			}
		}
	}
}

func runGemmCase(t *testing.T, impls []*impl, p *logical, transA, transB bool, v abVariant, caseNo int) {
	m, n, k := p.m, p.n, p.k
	pads := []int{0, 1, 3, 8}
	padA, padB, padC := pads[caseNo%4], pads[(caseNo/4)%4], pads[(caseNo/16)%4]
	var ga, gb *guarded
	var lda, ldb int
	if transA {
		lda = m + padA
		ga = layout(k, m, lda, caseNo%3, func(r, c int) float32 { return p.a[c*k+r] })
	} else {
		lda = k + padA
		ga = layout(m, k, lda, caseNo%3, func(r, c int) float32 { return p.a[r*k+c] })
	}
	if transB {
		ldb = k + padB
		gb = layout(n, k, ldb, caseNo%5, func(r, c int) float32 { return p.b[c*n+r] })
	} else {
		ldb = n + padB
		gb = layout(k, n, ldb, caseNo%5, func(r, c int) float32 { return p.b[r*n+c] })
	}
	ldc := n + padC
	c0 := randVals(uint64(caseNo))
	cInit := make([]float32, m*n)
	for i := range cInit {
		cInit[i] = c0(i)
		if v.nanC {
			cInit[i] = float32(math.NaN())
		}
	}
	aCopy := append([]float32(nil), ga.buf...)
	bCopy := append([]float32(nil), gb.buf...)

	name := fmt.Sprintf("m=%d n=%d k=%d tA=%v tB=%v alpha=%v beta=%v lda=%d ldb=%d ldc=%d", m, n, k, transA, transB, v.alpha, v.beta, lda, ldb, ldc)
	results := make([][]float32, len(impls))
	for ii, im := range impls {
		gc := layout(m, n, ldc, caseNo%7, func(r, c int) float32 { return cInit[r*n+c] })
		workers := 1 + caseNo%4
		gemm(im, workers, transA, transB, m, n, k, v.alpha, ga.data, lda, gb.data, ldb, v.beta, gc.data, ldc)
		ga.check(t, im.name+" A "+name)
		gb.check(t, im.name+" B "+name)
		gc.check(t, im.name+" C "+name)
		checkGaps(t, im.name+" C "+name, gc.data, n, ldc)
		checkUnchanged(t, im.name+" A "+name, aCopy, ga.buf)
		checkUnchanged(t, im.name+" B "+name, bCopy, gb.buf)
		res := make([]float32, m*n)
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				got := gc.data[i*ldc+j]
				res[i*n+j] = got
				cv := float64(cInit[i*n+j])
				want := float64(v.alpha) * p.ab[i*n+j]
				cmag := 0.0
				if v.beta != 0 {
					want += float64(v.beta) * cv
					cmag = math.Abs(float64(v.beta) * cv)
				}
				tol := float64(k+2)*eps32*(math.Abs(float64(v.alpha))*p.mag[i*n+j]+cmag) + 1e-30
				if d := math.Abs(float64(got) - want); !(d <= tol) {
					t.Fatalf("%s %s: C[%d][%d] = %v, float64 reference %v (|diff| %g > tol %g)", im.name, name, i, j, got, want, d, tol)
				}
			}
		}
		results[ii] = res
	}
	// Against the generic path (last), and the vector paths bit for bit
	// against each other: they share the k-blocking and the FMA chain.
	gen := results[len(results)-1]
	for ii, res := range results[:len(results)-1] {
		for i := range res {
			r, c := i/n, i%n
			tol := 2 * float64(k+2) * eps32 * (math.Abs(float64(v.alpha))*p.mag[i] + math.Abs(float64(v.beta)*float64(cInit[i])))
			if v.beta == 0 {
				tol = 2 * float64(k+2) * eps32 * math.Abs(float64(v.alpha)) * p.mag[i]
			}
			if d := math.Abs(float64(res[i]) - float64(gen[i])); !(d <= tol+1e-30) {
				t.Fatalf("%s %s: C[%d][%d] = %v, generic %v", impls[ii].name, name, r, c, res[i], gen[i])
			}
			if ii > 0 && math.Float32bits(res[i]) != math.Float32bits(results[0][i]) {
				t.Fatalf("%s %s: C[%d][%d] = %v, but %s gives %v: vector paths must agree bit for bit", impls[ii].name, name, r, c, res[i], impls[0].name, results[0][i])
			}
		}
	}
}

func TestGemmF64Acc(t *testing.T) {
	withAllWorkers(t)
	impls := available()
	caseNo := 0
	for _, m := range gemmSizes {
		for _, n := range gemmSizes {
			for _, k := range gemmSizes {
				if caseNo++; m*n*k > 5000 && caseNo%3 != 0 {
					continue // a third of the large shapes is plenty here
				}
				p := newLogical(m, n, k, uint64(m*10000+n*100+k+7))
				tr := caseNo % 4
				transA, transB := tr&1 != 0, tr&2 != 0
				var lda, ldb int
				var ga, gb *guarded
				if transA {
					lda = m + caseNo%3
					ga = layout(k, m, lda, 1, func(r, c int) float32 { return p.a[c*k+r] })
				} else {
					lda = k + caseNo%3
					ga = layout(m, k, lda, 1, func(r, c int) float32 { return p.a[r*k+c] })
				}
				if transB {
					ldb = k + caseNo%2
					gb = layout(n, k, ldb, 2, func(r, c int) float32 { return p.b[c*n+r] })
				} else {
					ldb = n + caseNo%2
					gb = layout(k, n, ldb, 2, func(r, c int) float32 { return p.b[r*n+c] })
				}
				ldc := n + caseNo%5
				c0 := randVals(uint64(caseNo))
				cStart := make([]float64, (m-1)*ldc+n)
				for i := range cStart {
					cStart[i] = guardF
					if i%ldc < n {
						cStart[i] = float64(c0(i))
					}
				}
				var first []float64
				for _, im := range impls {
					gc := newGuarded64(len(cStart), caseNo%3, func(i int) float64 { return cStart[i] })
					cInit := append([]float64(nil), gc.data...)
					gemmF64Acc(im, 1+caseNo%3, transA, transB, m, n, k, ga.data, lda, gb.data, ldb, gc.data, ldc)
					name := fmt.Sprintf("%s m=%d n=%d k=%d tA=%v tB=%v", im.name, m, n, k, transA, transB)
					gc.check(t, name)
					ga.check(t, name)
					gb.check(t, name)
					for i := 0; i < m; i++ {
						for j := n; j < ldc && i*ldc+j < len(gc.data); j++ {
							if math.Float64bits(gc.data[i*ldc+j]) != guard64 {
								t.Fatalf("%s: C gap element [%d][%d] overwritten", name, i, j)
							}
						}
						for j := 0; j < n; j++ {
							got := gc.data[i*ldc+j]
							want := cInit[i*ldc+j] + p.ab[i*n+j]
							tol := float64(k+2)*eps64*(p.mag[i*n+j]+math.Abs(cInit[i*ldc+j])) + 1e-300
							if d := math.Abs(got - want); !(d <= tol) {
								t.Fatalf("%s: C[%d][%d] = %v, reference %v (|diff| %g > %g)", name, i, j, got, want, d, tol)
							}
						}
					}
					if im != genericImpl {
						if first == nil {
							first = append([]float64(nil), gc.data...)
						} else {
							for i := range first {
								if math.Float64bits(first[i]) != math.Float64bits(gc.data[i]) {
									t.Fatalf("%s: element %d differs between vector paths", name, i)
								}
							}
						}
					}
				}
			}
		}
	}
}

// smallBlocks returns a copy of mk with tiny cache blocks, to exercise
// several A chunks and B panels on small matrices.
func smallBlocks[T float32 | float64](mk *microKernel[T]) *microKernel[T] {
	c := *mk
	c.mc, c.nc = c.mr, 2*c.nr
	return &c
}

// withPackedB runs f with maxPackedB set to v.
func withPackedB(v int, f func()) {
	old := maxPackedB
	maxPackedB = v
	defer func() { maxPackedB = old }()
	f()
}

// TestGemmDeterministic checks the promise of the package documentation:
// the same bits whatever the number of workers and the cache blocking.
func TestGemmDeterministic(t *testing.T) {
	withAllWorkers(t)
	forEachImpl(t, func(t *testing.T, im *impl) {
		// k > kc (256) for several k-blocks; smallBlocks gives several A
		// chunks and B panels; odd sizes give edge tiles everywhere.
		for _, sh := range [][3]int{{67, 150, 300}, {150, 67, 260}, {33, 400, 520}, {1, 300, 513}, {300, 3, 40}} {
			m, n, k := sh[0], sh[1], sh[2]
			for tr := 0; tr < 4; tr++ {
				transA, transB := tr&1 != 0, tr&2 != 0
				lda, ldb := k, n
				if transA {
					lda = m
				}
				if transB {
					ldb = k
				}
				ga := randVals(uint64(m + n + k + tr))
				a := make([]float32, m*k)
				for i := range a {
					a[i] = ga(i)
				}
				b := make([]float32, k*n)
				for i := range b {
					b[i] = ga(i)
				}
				c0 := make([]float32, m*n)
				for i := range c0 {
					c0[i] = ga(i)
				}
				run := func(workers int, small bool) []float32 {
					c := append([]float32(nil), c0...)
					use := im
					packed := maxPackedB
					if small {
						cp := *im
						cp.sgemm = smallBlocks(im.sgemm)
						use = &cp
						// Groups of one or two k-blocks (k-blocks of kc
						// rows, panels of 2·nr columns): three-block k
						// then splits into uneven groups.
						packed = (1 + workers%2) * im.sgemm.kc * 2 * im.sgemm.nr
					}
					withPackedB(packed, func() {
						gemm(use, workers, transA, transB, m, n, k, 1.5, a, lda, b, ldb, -0.5, c, ldc(n))
					})
					return c
				}
				want := run(1, false)
				for _, w := range []int{1, 2, 3, 5, 8} {
					for _, small := range []bool{w%2 == 0, w == 1 || w == 5} {
						got := run(w, small)
						for i := range want {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%v tA=%v tB=%v workers=%d small=%v: element %d = %v, with 1 worker %v", sh, transA, transB, w, small, i, got[i], want[i])
							}
						}
					}
				}
				// The float64 variant too.
				run64 := func(workers int, small bool) []float64 {
					c := make([]float64, m*n)
					use := im
					packed := maxPackedB
					if small {
						cp := *im
						cp.dgemm = smallBlocks(im.dgemm)
						use = &cp
						packed = 1
					}
					withPackedB(packed, func() {
						gemmF64Acc(use, workers, transA, transB, m, n, k, a, lda, b, ldb, c, n)
					})
					return c
				}
				want64 := run64(1, false)
				for _, w := range []int{2, 3, 7} {
					got := run64(w, w == 3)
					for i := range want64 {
						if math.Float64bits(got[i]) != math.Float64bits(want64[i]) {
							t.Fatalf("F64Acc %v workers=%d: element %d differs", sh, w, i)
						}
					}
				}
			}
		}
	})
}

func ldc(n int) int { return n }

// TestGemmGOMAXPROCS runs the public entry point under several GOMAXPROCS.
func TestGemmGOMAXPROCS(t *testing.T) {
	m, n, k := 300, 260, 700
	g := randVals(99)
	a := make([]float32, m*k)
	b := make([]float32, n*k)
	for i := range a {
		a[i] = g(i)
	}
	for i := range b {
		b[i] = g(i)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var want []float32
	for _, procs := range []int{1, 2, 3, 4, 16} {
		runtime.GOMAXPROCS(procs)
		c := make([]float32, m*n)
		Gemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
		if want == nil {
			want = c
			continue
		}
		for i := range c {
			if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
				t.Fatalf("GOMAXPROCS=%d: element %d = %v, with 1 %v", procs, i, c[i], want[i])
			}
		}
	}
}

// TestGemmGolden pins the exact bits of one product on the vector paths:
// AVX2, AVX-512 and NEON share the blocking and the FMA chains, so they
// must give these bits on every machine (arm64 runs this under qemu).
func TestGemmGolden(t *testing.T) {
	m, n, k := 37, 45, 700 // several k-blocks and edge tiles
	g := randVals(2024)
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	for i := range a {
		a[i] = g(i)
	}
	for i := range b {
		b[i] = g(i)
	}
	const want32, want64 = 0x2eb5946bfa98c7c9, 0xf451514aa566257c
	forEachImpl(t, func(t *testing.T, im *impl) {
		if im == genericImpl {
			t.Skip("the generic path is only required to be close")
		}
		c := make([]float32, m*n)
		gemm(im, 2, false, false, m, n, k, 0.5, a, k, b, n, 0, c, n)
		h := fnv.New64a()
		for _, v := range c {
			bits := math.Float32bits(v)
			h.Write([]byte{byte(bits), byte(bits >> 8), byte(bits >> 16), byte(bits >> 24)})
		}
		c64 := make([]float64, m*n)
		gemmF64Acc(im, 2, false, true, m, n, k, a, k, b, k, c64, n)
		h64 := fnv.New64a()
		for _, v := range c64 {
			bits := math.Float64bits(v)
			for s := 0; s < 64; s += 8 {
				h64.Write([]byte{byte(bits >> s)})
			}
		}
		if got := h.Sum64(); got != want32 {
			t.Errorf("Gemm bits hash %#x, want %#x", got, uint64(want32))
		}
		if got := h64.Sum64(); got != want64 {
			t.Errorf("GemmF64Acc bits hash %#x, want %#x", got, uint64(want64))
		}
	})
}

// TestGemmAgainstGonum uses gonum's pure-Go Sgemm as an independent oracle.
func TestGemmAgainstGonum(t *testing.T) {
	for _, sh := range [][3]int{{1, 1, 1}, {17, 33, 65}, {100, 64, 31}, {129, 257, 300}} {
		m, n, k := sh[0], sh[1], sh[2]
		for tr := 0; tr < 4; tr++ {
			transA, transB := tr&1 != 0, tr&2 != 0
			lda, ldb := k+2, n+1
			ar, br := m, k
			if transA {
				lda, ar = m+2, k
			}
			if transB {
				ldb, br = k+1, n
			}
			g := randVals(uint64(tr + m))
			a := make([]float32, ar*lda)
			b := make([]float32, br*ldb)
			c := make([]float32, m*n)
			for i := range a {
				a[i] = g(i)
			}
			for i := range b {
				b[i] = g(i)
			}
			for i := range c {
				c[i] = g(i)
			}
			want := append([]float32(nil), c...)
			tA, tB := blas.NoTrans, blas.NoTrans
			if transA {
				tA = blas.Trans
			}
			if transB {
				tB = blas.Trans
			}
			gonum.Implementation{}.Sgemm(tA, tB, m, n, k, 0.7, a, lda, b, ldb, 0.3, want, n)
			Gemm(transA, transB, m, n, k, 0.7, a, lda, b, ldb, 0.3, c, n)
			for i := range c {
				if d := math.Abs(float64(c[i] - want[i])); d > 1e-4*float64(k) {
					t.Fatalf("%v tA=%v tB=%v: element %d = %v, gonum %v", sh, transA, transB, i, c[i], want[i])
				}
			}
		}
	}
}

func TestGemmPanics(t *testing.T) {
	a := make([]float32, 12)
	cases := map[string]func(){
		"negative m":   func() { Gemm(false, false, -1, 2, 2, 1, a, 2, a, 2, 0, a, 2) },
		"small lda":    func() { Gemm(false, false, 2, 2, 3, 1, a, 2, a, 2, 0, a, 2) },
		"small ldb":    func() { Gemm(false, true, 2, 2, 3, 1, a, 3, a, 2, 0, a, 2) },
		"small ldc":    func() { Gemm(false, false, 2, 3, 2, 1, a, 2, a, 3, 0, a, 2) },
		"short a":      func() { Gemm(false, false, 5, 2, 3, 1, a, 3, a, 2, 0, a, 2) },
		"short b":      func() { Gemm(false, false, 2, 2, 13, 1, make([]float32, 26), 13, a, 2, 0, a, 2) },
		"short c":      func() { Gemm(false, false, 7, 2, 1, 1, a, 1, a, 2, 0, a, 2) },
		"F64 short c":  func() { GemmF64Acc(false, true, 2, 2, 2, a, 2, a, 2, make([]float64, 3), 2) },
		"F64 zero ldc": func() { GemmF64Acc(false, true, 2, 2, 2, a, 2, a, 2, make([]float64, 4), 0) },
	}
	for name, f := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// Empty products are fine, with nil slices.
	Gemm(false, false, 0, 0, 0, 1, nil, 1, nil, 1, 0, nil, 1)
	GemmF64Acc(true, true, 0, 5, 0, nil, 1, nil, 1, nil, 5)
	c := []float32{1, 2}
	Gemm(false, false, 1, 2, 0, 1, nil, 1, nil, 2, 3, c, 2) // k == 0: C = beta·C
	if c[0] != 3 || c[1] != 6 {
		t.Errorf("k=0: C = %v, want [3 6]", c)
	}
}

// TestPackTransposed checks every path's packing transposes (float32 and
// widening float64) against the Go loop, element for element, with guards
// around the destination.
func TestPackTransposed(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im *impl) {
		for rows := 1; rows <= 9; rows++ {
			for k := 1; k <= 13; k++ {
				for _, w := range []int{rows, rows + 3, 16} {
					if w < rows {
						continue
					}
					ld := k + rows%3
					vals := randVals(uint64(rows*100 + k))
					src := layout(rows, k, ld, k%3, func(int, int) float32 { return vals(0) })
					n := k * w
					what := fmt.Sprintf("rows=%d k=%d w=%d", rows, k, w)

					want32 := make([]float32, n)
					packTransposed(transposers{}, want32, src.data, ld, 0, rows, k, w)
					got32 := newGuarded(n, rows%3, func(int) float32 { return guard32 })
					packTransposed(im.transpose, got32.data, src.data, ld, 0, rows, k, w)
					for i := range want32 {
						if math.Float32bits(got32.data[i]) != math.Float32bits(want32[i]) {
							t.Fatalf("%s float32: element %d = %v, want %v", what, i, got32.data[i], want32[i])
						}
					}
					got32.check(t, what+" float32")

					got64 := newGuarded64(n, k%3, func(int) float64 { return guardF })
					packTransposed(im.transpose, got64.data, src.data, ld, 0, rows, k, w)
					for i, v := range want32 {
						if math.Float64bits(got64.data[i]) != math.Float64bits(float64(v)) {
							t.Fatalf("%s float64: element %d = %v, want %v", what, i, got64.data[i], v)
						}
					}
					got64.check(t, what+" float64")
					src.check(t, what+" source")
				}
			}
		}
	})
}
