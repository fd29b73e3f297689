package simd

import "math"

// Float32 approximations of e^x and erf(x) for activations (Softmax, GELU):
// the float64 math.Exp/math.Erf cost ~13 ns an element, these about 0.2 ns
// with AVX2. Error bounds (checked by TestExp, TestErf on dense grids of
// float32 inputs against the float64 functions):
//
//   - Exp: at most 2 ulp relative error for normal results; results below
//     2^-126 (x < -87.3) are rounded once to the subnormal grid, with an
//     absolute error under 2^-149 (one subnormal step); x > 88.73 gives +Inf,
//     x < -103.98 gives 0, NaN gives NaN.
//   - Erf: absolute error at most 1e-6 (a few ulp near ±1; relative
//     error at most 3e-6 for |x| >= 1e-3 and 1e-6 near 0, where erf(x) ≈ 1.128x);
//     erf(±0) = ±0, ±Inf gives ±1, NaN gives NaN.
//
// The algorithms (Cephes' expf range reduction and polynomial; for erf,
// the odd/even rational minimax approximation on [-4, 4] used by Eigen and
// XLA) are the same on every path; the assembly uses FMAs, so the paths may
// differ by an ulp.

// Exp sets dst[i] ≈ e^src[i] (see above for the accuracy). dst and src may
// be the same slice. It panics if len(dst) < len(src).
func Exp(dst, src []float32) {
	if len(dst) < len(src) {
		panic("simd: Exp: dst shorter than src")
	}
	active.exp(dst, src)
}

// Erf sets dst[i] ≈ erf(src[i]) (see above for the accuracy). dst and src
// may be the same slice. It panics if len(dst) < len(src).
func Erf(dst, src []float32) {
	if len(dst) < len(src) {
		panic("simd: Erf: dst shorter than src")
	}
	active.erf(dst, src)
}

// vec8 runs an assembly kernel that handles len(src)&^7 elements on the
// whole slice: the last len(src)%8 go through an 8-element buffer, so that
// every element gets the vector arithmetic.
func vec8(fn func(dst, src []float32), dst, src []float32) {
	n := len(src) &^ 7
	if n > 0 {
		fn(dst[:n], src[:n])
	}
	if n < len(src) {
		var buf [8]float32
		copy(buf[:], src[n:])
		fn(buf[:], buf[:])
		copy(dst[n:len(src)], buf[:])
	}
}

// Exp's constants (Cephes expf): ln 2 split so that n·ln2Hi is exact.
const (
	expHi    = 89
	expLo    = -104
	ln2Hi    = 0.693359375
	ln2Lo    = -2.12194440e-4
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
	float32E = 1.44269504088896340736 // log2(e)
)

// exp32 is e^x: x clamped to [-104, 89] (NaN kept), n = round(x·log2 e),
// r = x − n·ln 2 in two steps, e^r by a degree-7 polynomial, times 2^n
// applied as 2^(n>>1)·2^(n−n>>1) so that both factors are normal floats.
func exp32(x float32) float32 {
	if x > expHi {
		x = expHi
	}
	if x < expLo {
		x = expLo
	}
	n := float32(math.RoundToEven(float64(x * float32E)))
	r := x - n*ln2Hi
	r = r - n*ln2Lo
	y := float32(expP0)
	y = y*r + expP1
	y = y*r + expP2
	y = y*r + expP3
	y = y*r + expP4
	y = y*r + expP5
	y = y*(r*r) + r
	y += 1
	ni := int32(n)
	n1 := ni >> 1
	n2 := ni - n1
	s1 := math.Float32frombits(uint32(n1+127) << 23)
	s2 := math.Float32frombits(uint32(n2+127) << 23)
	return y * s1 * s2
}

func expGeneric(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		if x != x {
			dst[i] = x
			continue
		}
		dst[i] = exp32(x)
	}
}

// erf32 is erf(x) = x·P(x²)/Q(x²) on x clamped to [-4, 4] (beyond, erf is
// ±1 in float32), P of degree 6 and Q of degree 4.
func erf32(x float32) float32 {
	if x > 4 {
		x = 4
	}
	if x < -4 {
		x = -4
	}
	x2 := x * x
	p := float32(-2.72614225801306e-10)
	p = p*x2 + 2.77068142495902e-08
	p = p*x2 + -2.10102402082508e-06
	p = p*x2 + -5.69250639462346e-05
	p = p*x2 + -7.34990630326855e-04
	p = p*x2 + -2.95459980854025e-03
	p = p*x2 + -1.60960333262415e-02
	p *= x
	q := float32(-1.45660718464996e-05)
	q = q*x2 + -2.13374055278905e-04
	q = q*x2 + -1.68282697438203e-03
	q = q*x2 + -7.37332916720468e-03
	q = q*x2 + -1.42647390514189e-02
	return p / q
}

func erfGeneric(dst, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = erf32(x)
	}
}
