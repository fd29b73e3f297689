package half

import (
	"math"
	"sort"
	"testing"
)

// TestFloat16AllPatterns widens every binary16 pattern, checks it against the
// format's definition, and narrows it back to the same pattern.
func TestFloat16AllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := Float16ToFloat32(h)
		exp, mant := int(h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch exp {
		case 0:
			want = math.Ldexp(mant, -24)
		case 0x1f:
			want = math.Inf(1)
			if mant != 0 {
				want = math.NaN()
			}
		default:
			want = math.Ldexp(1024+mant, exp-25)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if math.IsNaN(want) != math.IsNaN(float64(f)) || (!math.IsNaN(want) && float64(f) != want) {
			t.Fatalf("Float16ToFloat32(%#04x) = %v, want %v", h, f, want)
		}
		back := Float32ToFloat16(f)
		if math.IsNaN(want) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x narrowed to non-NaN %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("round trip %#04x -> %v -> %#04x", h, f, back)
		}
	}
}

// TestFloat16RoundNearestEven checks narrowing against an independent oracle:
// a search over the sorted list of all finite binary16 values.
func TestFloat16RoundNearestEven(t *testing.T) {
	checkNearestEven(t, "float16", Float16ToFloat32, Float32ToFloat16, 65504)
}

func TestBFloat16RoundNearestEven(t *testing.T) {
	checkNearestEven(t, "bfloat16", BFloat16ToFloat32, Float32ToBFloat16, float64(BFloat16ToFloat32(0x7f7f)))
}

func TestBFloat16AllPatterns(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BFloat16ToFloat32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("BFloat16ToFloat32(%#04x) = %#08x", h, math.Float32bits(f))
		}
		back := Float32ToBFloat16(f)
		if f != f {
			if b := BFloat16ToFloat32(back); b == b {
				t.Fatalf("NaN %#04x narrowed to non-NaN %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("round trip %#04x -> %#04x", h, back)
		}
	}
}

func checkNearestEven(t *testing.T, name string, widen func(uint16) float32, narrow func(float32) uint16, maxFinite float64) {
	t.Helper()
	type val struct {
		v    float64
		bits uint16
	}
	var vals []val
	for i := 0; i < 1<<15; i++ { // non-negative patterns
		f := float64(widen(uint16(i)))
		if !math.IsInf(f, 0) && !math.IsNaN(f) {
			vals = append(vals, val{f, uint16(i)})
		}
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i].v < vals[j].v })
	oracle := func(x float64) uint16 {
		if x > maxFinite {
			// Beyond the largest finite value, halfway to the next power
			// step rounds to Inf (IEEE overflow rule).
			last, prev := vals[len(vals)-1].v, vals[len(vals)-2].v
			if x >= last+(last-prev)/2 {
				return widenInf(narrow)
			}
			return vals[len(vals)-1].bits
		}
		k := sort.Search(len(vals), func(i int) bool { return vals[i].v >= x })
		if vals[k].v == x || k == 0 {
			return vals[k].bits
		}
		lo, hi := vals[k-1], vals[k]
		switch dl, dh := x-lo.v, hi.v-x; {
		case dl < dh:
			return lo.bits
		case dh < dl:
			return hi.bits
		case lo.bits&1 == 0:
			return lo.bits
		default:
			return hi.bits
		}
	}
	// Probe each value, the midpoints to its neighbours, and points just off them.
	for i := 0; i+1 < len(vals); i++ {
		a, b := vals[i].v, vals[i+1].v
		mid := (a + b) / 2
		for _, x := range []float64{a, mid, math.Nextafter(mid, a), math.Nextafter(mid, b)} {
			x32 := float32(x)
			if float64(x32) != x {
				continue // not representable as float32: the oracle would see another input
			}
			for _, s := range []float64{1, -1} {
				got := narrow(float32(s * x))
				want := oracle(x)
				if s < 0 {
					want |= 0x8000
				}
				if got != want {
					t.Fatalf("%s: narrow(%g) = %#04x, want %#04x", name, s*x, got, want)
				}
			}
		}
	}
	if got := narrow(float32(maxFinite * 2)); got != widenInf(narrow) {
		t.Fatalf("%s: overflow gave %#04x", name, got)
	}
}

func widenInf(narrow func(float32) uint16) uint16 { return narrow(float32(math.Inf(1))) }
