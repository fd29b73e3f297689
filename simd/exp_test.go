package simd

import (
	"math"
	"testing"
)

// gridInputs returns float32 values spread over the whole range by bit
// pattern (every step-th pattern, both signs), plus the special values.
func gridInputs(step uint32) []float32 {
	var xs []float32
	for b := uint64(0); b < 1<<32; b += uint64(step) {
		xs = append(xs, math.Float32frombits(uint32(b)))
	}
	return append(xs, specials...)
}

// ulpDiff is |got - want| in units of the float32 spacing at want (the
// subnormal spacing below 2^-126).
func ulpDiff(got float32, want float64) float64 {
	w := float32(want)
	spacing := math.Abs(float64(math.Nextafter32(w, float32(math.Inf(1)))) - float64(w))
	if w == float32(math.MaxFloat32) || math.IsInf(float64(w), 0) {
		spacing = math.Abs(float64(w) - float64(math.Nextafter32(w, 0)))
	}
	return math.Abs(float64(got)-want) / spacing
}

func TestExp(t *testing.T) {
	xs := gridInputs(997)
	// A dense grid where Softmax lives, and around the overflow and
	// underflow thresholds.
	for x := float32(-20); x < 20; x += 1.0 / 1024 {
		xs = append(xs, x)
	}
	for _, c := range []float32{88.72283, 88.7228394, 88.72284, -87.33654, -87.3366, -103.97208, -103.9721, -104, -150} {
		for b := math.Float32bits(c) - 50; b < math.Float32bits(c)+50; b++ {
			xs = append(xs, math.Float32frombits(b))
		}
	}
	for _, im := range available() {
		// Guarded, odd length: the 8-wide tail path is exercised too.
		src := newGuarded(len(xs), 3, func(i int) float32 { return xs[i] })
		dst := newGuarded(len(xs), 1, func(int) float32 { return guard32 })
		im.exp(dst.data, src.data)
		src.check(t, im.name+" exp src")
		dst.check(t, im.name+" exp dst")
		worst, worstX := 0.0, float32(0)
		for i, x := range xs {
			got := dst.data[i]
			want := math.Exp(float64(x))
			switch {
			case x != x:
				if got == got {
					t.Fatalf("%s: exp(NaN) = %v", im.name, got)
				}
				continue
			case want > math.MaxFloat32*(1+0x1p-25):
				if !math.IsInf(float64(got), 1) {
					t.Fatalf("%s: exp(%v) = %v, want +Inf", im.name, x, got)
				}
				continue
			}
			if want < 0x1p-126 {
				// Subnormal results: one rounding to a 2^-149 grid.
				if d := math.Abs(float64(got) - want); d > 0x1p-149 {
					t.Fatalf("%s: exp(%v) = %g, want %g (|diff| %g > 2^-149)", im.name, x, got, want, d)
				}
				continue
			}
			if u := ulpDiff(got, want); u > worst {
				worst, worstX = u, x
			}
		}
		if worst > 2 {
			t.Errorf("%s: exp max error %.2f ulp at %v (bound 2)", im.name, worst, worstX)
		}
		t.Logf("%s: exp max error %.2f ulp at x = %v", im.name, worst, worstX)
		// In place gives the same.
		cp := append([]float32(nil), xs...)
		im.exp(cp, cp)
		for i := range cp {
			if math.Float32bits(cp[i]) != math.Float32bits(dst.data[i]) && cp[i] == cp[i] {
				t.Fatalf("%s: in-place exp differs at %v", im.name, xs[i])
			}
		}
	}
}

func TestErf(t *testing.T) {
	xs := gridInputs(997)
	for x := float32(-5); x < 5; x += 1.0 / 4096 {
		xs = append(xs, x)
	}
	for _, im := range available() {
		src := newGuarded(len(xs), 2, func(i int) float32 { return xs[i] })
		dst := newGuarded(len(xs), 5, func(int) float32 { return guard32 })
		im.erf(dst.data, src.data)
		src.check(t, im.name+" erf src")
		dst.check(t, im.name+" erf dst")
		worstAbs, worstRel := 0.0, 0.0
		var worstAbsX, worstRelX float32
		for i, x := range xs {
			got := dst.data[i]
			if x != x {
				if got == got {
					t.Fatalf("%s: erf(NaN) = %v", im.name, got)
				}
				continue
			}
			if x == 0 && math.Float32bits(got) != math.Float32bits(x) {
				t.Fatalf("%s: erf(%v) = %v: the sign of zero is lost", im.name, x, got)
			}
			want := math.Erf(float64(x))
			d := math.Abs(float64(got) - want)
			if math.Abs(float64(x)) < 0x1p-110 {
				// x·P(x²) rounds to the subnormal grid before the division
				// by Q(0) ≈ -0.0143: an absolute error, not a relative one.
				if d > 0x1p-140 && d > 1e-6*math.Abs(want) {
					t.Fatalf("%s: erf(%g) = %g, want %g (|diff| %g > 2^-140)", im.name, x, got, want, d)
				}
				continue
			}
			if d > worstAbs {
				worstAbs, worstAbsX = d, x
			}
			if want != 0 {
				lim := 3e-6
				if math.Abs(float64(x)) < 1e-3 {
					lim = 1e-6
				}
				r := d / math.Abs(want)
				if r > worstRel {
					worstRel, worstRelX = r, x
				}
				if r > lim {
					t.Fatalf("%s: erf(%v) = %v, want %v (relative error %g > %g)", im.name, x, got, want, r, lim)
				}
			}
		}
		if worstAbs > 1e-6 {
			t.Errorf("%s: erf max absolute error %g at %v (bound 1e-6)", im.name, worstAbs, worstAbsX)
		}
		t.Logf("%s: erf max abs error %g at %v, max rel error %g at %v", im.name, worstAbs, worstAbsX, worstRel, worstRelX)
	}
}

// TestBinary checks every operation and operand form on every path bit for
// bit against the Go operators, on special values and all lengths 0..67,
// in guard zones, and in place.
func TestBinary(t *testing.T) {
	for _, im := range available() {
		old := active
		active = im
		for op := OpAdd; op <= OpDiv; op++ {
			for n := 0; n <= 67; n++ {
				x := newGuarded(n, n%3, func(i int) float32 { return specials[(i*5+n)%len(specials)] })
				y := newGuarded(n, n%5, func(i int) float32 { return specials[(i*3+2*n+1)%len(specials)] })
				for form := 0; form < 3; form++ {
					dst := newGuarded(n, 1, func(int) float32 { return guard32 })
					sx, sy := specials[n%len(specials)], specials[(n+4)%len(specials)]
					switch form {
					case 0:
						Binary(op, dst.data, x.data, y.data)
					case 1:
						BinaryScalarY(op, dst.data, x.data, sy)
					case 2:
						BinaryScalarX(op, dst.data, sx, y.data)
					}
					x.check(t, "x")
					y.check(t, "y")
					dst.check(t, "dst")
					for i := 0; i < n; i++ {
						a, b := x.data[i], y.data[i]
						if form == 1 {
							b = sy
						}
						if form == 2 {
							a = sx
						}
						want := apply(op, a, b)
						got := dst.data[i]
						if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
							t.Fatalf("%s op %d form %d n=%d: %v op %v = %v, want %v", im.name, op, form, n, a, b, got, want)
						}
					}
				}
				// In place.
				cp := append([]float32(nil), x.data...)
				Binary(op, cp, cp, y.data)
				for i := range cp {
					want := apply(op, x.data[i], y.data[i])
					if math.Float32bits(cp[i]) != math.Float32bits(want) && !(cp[i] != cp[i] && want != want) {
						t.Fatalf("%s op %d in place n=%d: differs at %d", im.name, op, n, i)
					}
				}
			}
		}
		active = old
	}
}
