package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Guarded buffers, after gonum's internal/asm tests: every slice handed to
// a kernel sits between guard zones filled with a NaN whose payload no
// arithmetic produces, and has its capacity cut to its length. After the
// call, the guards must still hold that exact bit pattern: a kernel that
// writes past either end of its slice is caught even where the Go bounds
// checks cannot see (assembly).

const (
	guardLen  = 37 // odd, so that slices start at every alignment
	guardBits = 0x7fa5a5a5
	guard64   = 0x7ff4a5a5a5a5a5a5
)

var (
	guard32 = math.Float32frombits(guardBits)
	guardF  = math.Float64frombits(guard64)
)

// guarded is a float32 slice surrounded by guard zones.
type guarded struct {
	buf  []float32
	off  int
	data []float32 // buf[off:off+n:off+n]
}

// newGuarded returns n elements from gen, starting `shift` elements past a
// guard zone (shift varies the alignment).
func newGuarded(n, shift int, gen func(i int) float32) *guarded {
	g := &guarded{buf: make([]float32, guardLen+shift+n+guardLen), off: guardLen + shift}
	for i := range g.buf {
		g.buf[i] = guard32
	}
	g.data = g.buf[g.off : g.off+n : g.off+n]
	for i := range g.data {
		g.data[i] = gen(i)
	}
	return g
}

func (g *guarded) check(t *testing.T, what string) {
	t.Helper()
	for i, v := range g.buf {
		if i >= g.off && i < g.off+len(g.data) {
			continue
		}
		if math.Float32bits(v) != guardBits {
			t.Fatalf("%s: guard element %d (relative %d) overwritten: %v", what, i, i-g.off, v)
		}
	}
}

type guarded64 struct {
	buf  []float64
	off  int
	data []float64
}

func newGuarded64(n, shift int, gen func(i int) float64) *guarded64 {
	g := &guarded64{buf: make([]float64, guardLen+shift+n+guardLen), off: guardLen + shift}
	for i := range g.buf {
		g.buf[i] = guardF
	}
	g.data = g.buf[g.off : g.off+n : g.off+n]
	for i := range g.data {
		g.data[i] = gen(i)
	}
	return g
}

func (g *guarded64) check(t *testing.T, what string) {
	t.Helper()
	for i, v := range g.buf {
		if i >= g.off && i < g.off+len(g.data) {
			continue
		}
		if math.Float64bits(v) != guard64 {
			t.Fatalf("%s: guard element %d (relative %d) overwritten: %v", what, i, i-g.off, v)
		}
	}
}

// randVals returns a generator of values in [-1, 1) with a spread of
// magnitudes, reproducibly from seed.
func randVals(seed uint64) func(int) float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	return func(int) float32 {
		v := float32(r.Float64()*2 - 1)
		if r.IntN(8) == 0 {
			v *= 1 << 6
		}
		return v
	}
}

// eps32 is float32's unit roundoff doubled, for error bounds of the form
// (terms)·eps·Σ|products|.
const (
	eps32 = 0x1p-23
	eps64 = 0x1p-52
)

func forEachImpl(t *testing.T, f func(t *testing.T, im *impl)) {
	for _, im := range available() {
		t.Run(im.name, func(t *testing.T) { f(t, im) })
	}
}

func TestPathNames(t *testing.T) {
	im := available()
	if im[len(im)-1] != genericImpl {
		t.Fatal("generic implementation is not last")
	}
	names := map[string]bool{}
	for _, x := range im {
		names[x.name] = true
	}
	if !names[Path()] {
		t.Fatalf("Path() = %q is not among the available %v", Path(), names)
	}
	t.Logf("active path %s; available %d; caches L1=%d L2=%d L3=%d", Path(), len(im), cacheL1, cacheL2, cacheL3)
	if got := choose(im, "1", ""); got != genericImpl {
		t.Errorf("ONNX_REBASIN_NOASM=1 chose %s", got.name)
	}
	if got := choose(im, "", "generic"); got != genericImpl {
		t.Errorf("ONNX_REBASIN_SIMD=generic chose %s", got.name)
	}
	if got := choose(im, "", "nonsense"); got != im[0] {
		t.Errorf("unknown ONNX_REBASIN_SIMD chose %s, want the best %s", got.name, im[0].name)
	}
	if got := choose(im, "0", ""); got != im[0] {
		t.Errorf("ONNX_REBASIN_NOASM=0 chose %s", got.name)
	}
}

func TestDot(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im *impl) {
		for n := 0; n <= 67; n++ {
			for shift := 0; shift < 3; shift++ {
				x := newGuarded(n, shift, randVals(uint64(n)))
				y := newGuarded(n, 2-shift, randVals(uint64(n)+1000))
				var ref, mag float64
				for i := 0; i < n; i++ {
					p := float64(x.data[i]) * float64(y.data[i])
					ref += p
					mag += math.Abs(p)
				}
				tol := float64(n+1) * eps32 * mag
				got := im.dot(x.data, y.data)
				if d := math.Abs(float64(got) - ref); d > tol {
					t.Errorf("n=%d: dot=%v, float64 reference %v (|diff| %g > %g)", n, got, ref, d, tol)
				}
				gen := dotGeneric(x.data, y.data)
				if d := math.Abs(float64(got) - float64(gen)); d > 2*tol {
					t.Errorf("n=%d: dot=%v, generic %v", n, got, gen)
				}
				got64 := im.dotF64(x.data, y.data)
				if d := math.Abs(got64 - ref); d > float64(n+1)*eps64*mag {
					t.Errorf("n=%d: dotF64=%v, float64 reference %v", n, got64, ref)
				}
				if d := math.Abs(got64 - dotF64Generic(x.data, y.data)); d > 2*float64(n+1)*eps64*mag {
					t.Errorf("n=%d: dotF64=%v, generic %v", n, got64, dotF64Generic(x.data, y.data))
				}
				x.check(t, fmt.Sprintf("dot n=%d x", n))
				y.check(t, fmt.Sprintf("dot n=%d y", n))
			}
		}
	})
}

func TestDotF64Precision(t *testing.T) {
	// 1 + many tiny terms: float32 accumulation would drop them all.
	n := 4099
	x := make([]float32, n)
	y := make([]float32, n)
	x[0], y[0] = 1, 1
	for i := 1; i < n; i++ {
		x[i], y[i] = 0x1p-13, 0x1p-13 // product 2^-26, below float32's half-ulp of 1
	}
	want := 1 + float64(n-1)*0x1p-26
	forEachImpl(t, func(t *testing.T, im *impl) {
		if got := im.dotF64(x, y); got != want {
			t.Errorf("dotF64 = %v, want %v", got, want)
		}
	})
}

func TestSumSqF64(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im *impl) {
		// Lengths around the kernels' 16/4/1 steps and sharedOnes' length.
		for _, n := range []int{0, 1, 3, 4, 5, 15, 16, 17, 31, 33, 67, 4095, 4096, 4097, 5000} {
			x := newGuarded(n, n%3, randVals(uint64(n)+7))
			ones := make([]float32, n)
			for i := range ones {
				ones[i] = 1
			}
			sum, sq := sumSqF64(im, x.data)
			if want := im.dotF64(x.data, ones); math.Float64bits(sum) != math.Float64bits(want) {
				t.Errorf("n=%d: sum %v, dotF64(x, ones) %v", n, sum, want)
			}
			if want := im.dotF64(x.data, x.data); math.Float64bits(sq) != math.Float64bits(want) {
				t.Errorf("n=%d: sum of squares %v, dotF64(x, x) %v", n, sq, want)
			}
			x.check(t, fmt.Sprintf("sumSq n=%d", n))
		}
	})
}

func TestAxpy(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im *impl) {
		for _, alpha := range []float32{0, 1, -1, 0.37, 3} {
			for n := 0; n <= 67; n++ {
				x := newGuarded(n, n%3, randVals(uint64(n)))
				y := newGuarded(n, (n+1)%4, randVals(uint64(n)+77))
				yg := append([]float32(nil), y.data...)
				ref := make([]float64, n)
				for i := range ref {
					ref[i] = float64(alpha)*float64(x.data[i]) + float64(y.data[i])
				}
				im.axpy(alpha, x.data, y.data)
				axpyGeneric(alpha, x.data, yg)
				for i := range ref {
					tol := eps32 * (math.Abs(float64(alpha)*float64(x.data[i])) + math.Abs(ref[i]))
					if d := math.Abs(float64(y.data[i]) - ref[i]); d > tol {
						t.Fatalf("alpha=%v n=%d i=%d: axpy %v, float64 reference %v", alpha, n, i, y.data[i], ref[i])
					}
					if d := math.Abs(float64(y.data[i]) - float64(yg[i])); d > 2*tol {
						t.Fatalf("alpha=%v n=%d i=%d: axpy %v, generic %v", alpha, n, i, y.data[i], yg[i])
					}
				}
				x.check(t, "axpy x")
				y.check(t, "axpy y")
			}
		}
	})
}

func TestScale(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im *impl) {
		for _, alpha := range []float32{0, 1, -2, 0.37} {
			for n := 0; n <= 67; n++ {
				x := newGuarded(n, n%5, randVals(uint64(n)))
				want := make([]float32, n)
				for i, v := range x.data {
					// The float64 product of two float32s is exact, so
					// rounding it once gives the correctly rounded result,
					// which every path must produce exactly.
					want[i] = float32(float64(alpha) * float64(v))
				}
				im.scale(alpha, x.data)
				for i := range want {
					if x.data[i] != want[i] {
						t.Fatalf("alpha=%v n=%d i=%d: scale %v, want %v", alpha, n, i, x.data[i], want[i])
					}
				}
				x.check(t, "scale x")
			}
		}
	})
}

// TestScaleShift: every path gives the bits of the Go expression
// float32(v*a) + b (the product rounded before the sum: a fused
// multiply-add would differ), in place too, on random values and on
// specials (signed zeros, infinities, NaNs, subnormals), without writing
// outside dst.
func TestScaleShift(t *testing.T) {
	forEachImpl(t, func(t *testing.T, im *impl) {
		fused := 0 // cases where a fused multiply-add gives other bits
		for _, ab := range [][2]float32{{1, 0}, {0.37, -1.25}, {-2, 3e-39}, {3e38, -3e38}, {1.0000001, 1e-8}} {
			a, b := ab[0], ab[1]
			for n := 0; n <= 67; n++ {
				gen := randVals(uint64(n))
				if n%2 == 1 {
					gen = func(i int) float32 { return specials[(i*7+n)%len(specials)] }
				}
				src := newGuarded(n, n%3, gen)
				dst := newGuarded(n, n%5, func(int) float32 { return guard32 })
				want := make([]float32, n)
				for i, v := range src.data {
					want[i] = float32(v*a) + b
					if f := float32(math.FMA(float64(v), float64(a), float64(b))); f == f && f != want[i] {
						fused++
					}
				}
				im.scaleShift(dst.data, src.data, a, b)
				src.check(t, "scaleShift src")
				dst.check(t, "scaleShift dst")
				for i := range want {
					if math.Float32bits(dst.data[i]) != math.Float32bits(want[i]) && !(isNaN32(dst.data[i]) && isNaN32(want[i])) {
						t.Fatalf("a=%v b=%v n=%d i=%d: scaleShift(%v) = %v, want %v", a, b, n, i, src.data[i], dst.data[i], want[i])
					}
				}
				im.scaleShift(src.data, src.data, a, b) // in place
				for i := range want {
					if math.Float32bits(src.data[i]) != math.Float32bits(dst.data[i]) {
						t.Fatalf("a=%v b=%v n=%d: in-place scaleShift differs at %d", a, b, n, i)
					}
				}
			}
		}
		if fused == 0 {
			t.Fatal("no case tells the product-then-sum apart from a fused multiply-add")
		}
	})
}

func isNaN32(v float32) bool { return v != v }

func TestLengthMismatchPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Dot":    func() { Dot(make([]float32, 3), make([]float32, 4)) },
		"DotF64": func() { DotF64(make([]float32, 3), make([]float32, 2)) },
		"Axpy":   func() { Axpy(1, make([]float32, 3), make([]float32, 2)) },
		// dst shorter than src
		"ScaleShift": func() { ScaleShift(make([]float32, 2), make([]float32, 3), 1, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic on a length mismatch", name)
				}
			}()
			f()
		}()
	}
}

func TestPublicAPI(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	y := []float32{9, 8, 7, 6, 5, 4, 3, 2, 1}
	if got := Dot(x, y); got != 165 {
		t.Errorf("Dot = %v, want 165", got)
	}
	if got := DotF64(x, y); got != 165 {
		t.Errorf("DotF64 = %v, want 165", got)
	}
	z := append([]float32(nil), y...)
	Axpy(2, x, z)
	for i := range z {
		if z[i] != y[i]+2*x[i] {
			t.Fatalf("Axpy: z[%d] = %v", i, z[i])
		}
	}
	Scale(0.5, z)
	for i := range z {
		if z[i] != (y[i]+2*x[i])/2 {
			t.Fatalf("Scale: z[%d] = %v", i, z[i])
		}
	}
}
