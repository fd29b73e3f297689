package infer

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// Tests that the specialised kernels (branch-free selects, pooling and
// convolution fast paths) compute exactly what the plain definitions
// compute, bit for bit, including on -0, infinities and NaNs.

// specials are values whose handling a branch-free kernel could get wrong.
var specials = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)),
	float32(math.NaN()), -float32(math.NaN()), math.Float32frombits(0x7fc00123), math.Float32frombits(0xffc00456),
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32,
}

// withSpecials returns n random normal values with specials sprinkled in.
func withSpecials(rng *rand.Rand, n int, frac float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		if rng.Float64() < frac {
			v[i] = specials[rng.Intn(len(specials))]
		} else {
			v[i] = float32(rng.NormFloat64())
		}
	}
	return v
}

func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func TestReluBits(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	src := append(withSpecials(rng, 1000, 0.3), specials...)
	for b := uint32(0x7f7ffff0); b < 0x7f800010; b++ { // around +Inf / NaN
		src = append(src, math.Float32frombits(b), math.Float32frombits(b|0x80000000))
	}
	want := make([]float32, len(src))
	for i, v := range src {
		if v < 0 {
			v = 0
		}
		want[i] = v
	}
	got := make([]float32, len(src))
	relu(got, src)
	if i := sameBits(got, want); i >= 0 {
		t.Fatalf("relu(%x) = %x, want %x", math.Float32bits(src[i]), math.Float32bits(got[i]), math.Float32bits(want[i]))
	}
	// Through the operator, in place and not.
	x := NewFloat32([]int{len(src)}, src)
	if i := sameBits(runOp(t, "Relu", 14, nil, 1, x)[0].F, want); i >= 0 {
		t.Fatalf("Relu op at %d", i)
	}
}

func TestMaxNaNBits(t *testing.T) {
	for _, a := range specials {
		for _, v := range specials {
			want := a
			if v > a || v != v {
				want = v
			}
			if got := maxNaN(a, v); math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("maxNaN(%x, %x) = %x, want %x", math.Float32bits(a), math.Float32bits(v), math.Float32bits(got), math.Float32bits(want))
			}
		}
	}
}

// naiveMaxPool is MaxPool over [N C H W] as the ONNX reference defines it,
// visiting each window's taps row by row with the update "v > acc or v is
// NaN", as pool3 always did.
func naiveMaxPool(x *Tensor, k, s, pb, pe []int, ceil bool) *Tensor {
	n, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	out := func(in, k, s, pb, pe int) int {
		span := in + pb + pe - k
		if ceil {
			o := (span+s-1)/s + 1
			if (o-1)*s >= in+pb {
				o--
			}
			return o
		}
		return span/s + 1
	}
	oh, ow := out(h, k[0], s[0], pb[0], pe[0]), out(w, k[1], s[1], pb[1], pe[1])
	y := NewFloat32([]int{n, c, oh, ow}, nil)
	for p := 0; p < n*c; p++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				acc := float32(math.Inf(-1))
				for a := 0; a < k[0]; a++ {
					for b := 0; b < k[1]; b++ {
						r, q := i*s[0]-pb[0]+a, j*s[1]-pb[1]+b
						if r < 0 || r >= h || q < 0 || q >= w {
							continue
						}
						if v := x.F[(p*h+r)*w+q]; v > acc || v != v {
							acc = v
						}
					}
				}
				y.F[(p*oh+i)*ow+j] = acc
			}
		}
	}
	return y
}

func TestMaxPoolBits(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, c := range []struct {
		h, w   int
		k, s   []int
		pb, pe []int
		ceil   bool
	}{
		{28, 28, []int{2, 2}, []int{2, 2}, []int{0, 0}, []int{0, 0}, false}, // the fast 2×2 path
		{7, 9, []int{2, 2}, []int{2, 2}, []int{0, 0}, []int{0, 0}, false},   // odd sizes: last row/column dropped
		{7, 9, []int{2, 2}, []int{2, 2}, []int{0, 0}, []int{0, 0}, true},    // ceil: partial windows, generic path
		{10, 11, []int{3, 3}, []int{2, 2}, []int{0, 0}, []int{0, 0}, false}, // fast path, general kernel
		{10, 11, []int{3, 2}, []int{1, 3}, []int{0, 0}, []int{0, 0}, false},
		{10, 11, []int{3, 3}, []int{2, 2}, []int{1, 1}, []int{1, 1}, false}, // padding: generic path
		{8, 8, []int{2, 2}, []int{1, 1}, []int{0, 0}, []int{0, 0}, false},   // overlapping 2×2 windows
		{1, 12, []int{1, 3}, []int{1, 3}, []int{0, 0}, []int{0, 0}, false},
	} {
		for _, frac := range []float64{0, 0.3} {
			x := NewFloat32([]int{2, 3, c.h, c.w}, withSpecials(rng, 2*3*c.h*c.w, frac))
			at := attrs{"kernel_shape": c.k, "strides": c.s, "pads": append(append([]int{}, c.pb...), c.pe...)}
			if c.ceil {
				at["ceil_mode"] = 1
			}
			name := fmt.Sprintf("%dx%d k%v s%v pads %v %v ceil %v specials %v", c.h, c.w, c.k, c.s, c.pb, c.pe, c.ceil, frac)
			got := runOp(t, "MaxPool", 12, at, 1, x)[0]
			want := naiveMaxPool(x, c.k, c.s, c.pb, c.pe, c.ceil)
			if !slices.Equal(got.Shape, want.Shape) {
				t.Fatalf("%s: shape %v, want %v", name, got.Shape, want.Shape)
			}
			if i := sameBits(got.F, want.F); i >= 0 {
				t.Fatalf("%s: y[%d] = %x, want %x", name, i, math.Float32bits(got.F[i]), math.Float32bits(want.F[i]))
			}
		}
	}
	// 1-D pooling takes the same fast path.
	x := NewFloat32([]int{2, 3, 12}, withSpecials(rng, 72, 0.3))
	got := runOp(t, "MaxPool", 12, attrs{"kernel_shape": []int{3}, "strides": []int{3}}, 1, x)[0]
	want := naiveMaxPool(NewFloat32([]int{2, 3, 1, 12}, x.F), []int{1, 3}, []int{1, 3}, []int{0, 0}, []int{0, 0}, false)
	if i := sameBits(got.F, want.F); i >= 0 {
		t.Fatalf("1-D: y[%d] = %x, want %x", i, math.Float32bits(got.F[i]), math.Float32bits(want.F[i]))
	}
}

// BenchmarkMaxPool2x2 pools 64·32 planes of 28×28 (Relu'd normal values,
// about half zeros), as the CNN test models' first MaxPool does.
func BenchmarkMaxPool2x2(b *testing.B) {
	rng := rand.New(rand.NewSource(3))
	x := randT(rng, 64, 32, 28, 28)
	relu(x.F, x.F)
	s, err := NewSession(opModel("MaxPool", 12, attrs{"kernel_shape": []int{2, 2}, "strides": []int{2, 2}}, []DType{Float32}, 1), Threads(1))
	if err != nil {
		b.Fatal(err)
	}
	in := map[string]*Tensor{"in0": x}
	b.SetBytes(int64(4 * len(x.F)))
	for i := 0; i < b.N; i++ {
		if _, err := s.Run(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIm2colShifted checks the stride-1 same-width im2col against the
// generic one over kernels, dilations and (asymmetric) paddings.
func TestIm2colShifted(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	tried := 0
	for _, in := range [][]int{{6, 7}, {1, 9}, {5, 1}, {3, 3}, {11}} {
		for k := 1; k <= 5; k++ {
			for d := 1; d <= 2; d++ {
				for pb := 0; pb <= 4; pb++ {
					for pe := 0; pe <= 4; pe++ {
						r := len(in)
						ks, ds, pads := make([]int, r), make([]int, r), make([]int, 2*r)
						for i := range ks {
							ks[i], ds[i] = k, d
							pads[i], pads[r+i] = pb, pe
						}
						if r == 2 { // a different kernel height
							ks[0] = 1 + rng.Intn(4)
							pads[0], pads[2] = rng.Intn(3), rng.Intn(3)
						}
						w, err := (&spatialAttrs{dilations: ds, pads: pads, autoPad: "NOTSET"}).resolve(in, ks)
						if err != nil || w.out[2] != w.in[2] {
							continue
						}
						tried++
						c := 2
						x := withSpecials(rng, c*w.inSize(), 0.1)
						n := c * w.kSize() * w.outSize()
						want, got := make([]float32, n), make([]float32, n)
						for i := range got {
							got[i] = 42 // must all be overwritten
						}
						im2colGeneric(x, c, w, want)
						im2col(x, c, w, got)
						if i := sameBits(got, want); i >= 0 {
							t.Fatalf("in %v kernel %v dil %v pads %v: col[%d] = %v, want %v", in, ks, ds, pads, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
	if tried < 50 {
		t.Fatalf("only %d windows tried", tried)
	}
}

func TestFill(t *testing.T) {
	for n := 0; n < 300; n++ {
		buf := make([]float32, n+2)
		fill(buf[1:n+1], -2.5)
		for i, v := range buf {
			want := float32(-2.5)
			if i == 0 || i == n+1 {
				want = 0
			}
			if v != want {
				t.Fatalf("n=%d: buf[%d] = %v, want %v", n, i, v, want)
			}
		}
	}
}
