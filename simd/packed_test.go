package simd

import (
	"fmt"
	"math"
	"testing"
)

// TestGemmPackedA checks every PackedA kernel of every path bit for bit
// against Gemm on the same path (same k-blocking and FMA chains), on edge
// shapes (m, n not multiples of the tile, k across a k-block boundary),
// with padded leading dimensions, beta 0 over a NaN-filled C, 1 and 0.5,
// inside guard zones, and computed in two column ranges.
func TestGemmPackedA(t *testing.T) {
	ms := []int{1, 2, 5, 8, 13, 14, 16, 17, 32, 64, 65}
	ns := []int{1, 3, 16, 31, 32, 33, 100, 196}
	ks := []int{1, 7, 9, 144, 256, 257, 300}
	betas := []float32{0, 1, 0.5}
	caseNo := 0
	for _, im := range available() {
		for ki, kern := range im.strided {
			for _, m := range ms {
				for _, n := range ns {
					for _, k := range ks {
						caseNo++
						beta := betas[caseNo%3]
						p := newLogical(m, n, k, uint64(caseNo))
						lda, ldb, ldc := k+caseNo%3, n+(caseNo/3)%4, n+(caseNo/5)%3
						ga := layout(m, k, lda, caseNo%3, func(r, c int) float32 { return p.a[r*k+c] })
						gb := layout(k, n, ldb, caseNo%5, func(r, c int) float32 { return p.b[r*n+c] })
						c0 := randVals(uint64(caseNo) + 99)
						cVals := make([]float32, m*n)
						for i := range cVals {
							cVals[i] = c0(i)
							if beta == 0 {
								cVals[i] = float32(math.NaN())
							}
						}
						cInit := func(r, c int) float32 { return cVals[r*n+c] }
						want := layout(m, n, ldc, 0, cInit)
						gemm(im, 1, false, false, m, n, k, 1, ga.data, lda, gb.data, ldb, beta, want.data, ldc)
						pa := packAWith(im, kern, m, k, ga.data, lda)
						name := fmt.Sprintf("%s kernel %d (%d×%d) m=%d n=%d k=%d beta=%v", im.name, ki, kern.mr, kern.nr, m, n, k, beta)
						for _, split := range []int{n, (n / 2) &^ (kern.nr - 1)} {
							if split <= 0 {
								continue
							}
							gc := layout(m, n, ldc, caseNo%7, cInit)
							old := active
							active = im
							GemmPackedA(pa, split, gb.data, ldb, beta, gc.data, ldc)
							if split < n {
								GemmPackedA(pa, n-split, gb.data[split:], ldb, beta, gc.data[split:], ldc)
							}
							active = old
							ga.check(t, name+" A")
							gb.check(t, name+" B")
							gc.check(t, name+" C")
							checkGaps(t, name+" C", gc.data, n, ldc)
							for i := 0; i < m; i++ {
								for j := 0; j < n; j++ {
									g, w := gc.data[i*ldc+j], want.data[i*ldc+j]
									if math.Float32bits(g) != math.Float32bits(w) {
										t.Fatalf("%s split %d: C[%d][%d] = %v, Gemm %v", name, split, i, j, g, w)
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestPickKernel(t *testing.T) {
	k14 := &stridedKernel{mr: 14, cost: 1}
	k8 := &stridedKernel{mr: 8, cost: 0.95}
	c := []*stridedKernel{k14, k8}
	for _, tc := range []struct {
		m    int
		want *stridedKernel
	}{{1, k8}, {8, k8}, {14, k14}, {16, k8}, {28, k14}, {32, k8}, {64, k8}, {128, k8}, {256, k8}} {
		if got := pickKernel(c, tc.m); got != tc.want {
			t.Errorf("m=%d: got %d-row kernel, want %d", tc.m, got.mr, tc.want.mr)
		}
	}
}

// specials are the float32 values the pooling and activation kernels must
// treat exactly: signed zeros, infinities, NaNs with different payloads and
// signs, subnormals and ordinary numbers.
var specials = []float32{
	0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -2.5, 3e38, -3e38,
	float32(math.Inf(1)), float32(math.Inf(-1)),
	math.Float32frombits(0x7fc00000), math.Float32frombits(0xffc00001), math.Float32frombits(0x7f800001),
	math.Float32frombits(1), math.Float32frombits(0x80000001),
}

func TestRelu(t *testing.T) {
	for _, im := range available() {
		for n := 0; n <= 67; n++ {
			src := newGuarded(n, n%3, func(i int) float32 { return specials[(i*7+n)%len(specials)] })
			dst := newGuarded(n, n%5, func(int) float32 { return guard32 })
			im.relu(dst.data, src.data)
			src.check(t, im.name+" relu src")
			dst.check(t, im.name+" relu dst")
			for i, v := range src.data {
				want := v
				if v < 0 {
					want = 0
				}
				if math.Float32bits(dst.data[i]) != math.Float32bits(want) {
					t.Fatalf("%s n=%d: relu(%v) = %v (bits %#x), want %#x", im.name, n, v, dst.data[i], math.Float32bits(dst.data[i]), math.Float32bits(want))
				}
			}
			// In place.
			im.relu(src.data, src.data)
			for i := range src.data {
				if math.Float32bits(dst.data[i]) != math.Float32bits(src.data[i]) {
					t.Fatalf("%s n=%d: in-place relu differs at %d", im.name, n, i)
				}
			}
		}
	}
}

func TestMaxPool2x2(t *testing.T) {
	for _, im := range available() {
		for n := 0; n <= 41; n++ {
			for seed := 0; seed < 8; seed++ {
				gen := func(off int) func(int) float32 {
					return func(i int) float32 {
						h := uint32(i*2654435761) ^ uint32(seed*40503+off)
						if seed < 4 {
							return specials[int(h>>7)%len(specials)]
						}
						return float32(int(h>>9)%7) - 3 // many ties and zeros
					}
				}
				r0 := newGuarded(2*n+seed%2, seed%3, gen(1))
				r1 := newGuarded(2*n+seed%2, seed%5, gen(2))
				dst := newGuarded(n, n%3, func(int) float32 { return guard32 })
				im.maxPool2x2(dst.data, r0.data, r1.data)
				r0.check(t, im.name+" r0")
				r1.check(t, im.name+" r1")
				dst.check(t, im.name+" dst")
				for i := 0; i < n; i++ {
					a, b, c, d := r0.data[2*i], r0.data[2*i+1], r1.data[2*i], r1.data[2*i+1]
					want := a
					for _, v := range []float32{b, c, d} {
						if v > want || v != v {
							want = v
						}
					}
					if math.Float32bits(dst.data[i]) != math.Float32bits(want) {
						t.Fatalf("%s n=%d i=%d: max(%v %v %v %v) = %v (%#x), want %#x", im.name, n, i, a, b, c, d, dst.data[i], math.Float32bits(dst.data[i]), math.Float32bits(want))
					}
				}
			}
		}
	}
}

// TestGemmSmall checks GemmSmall bit for bit against Gemm on every path,
// with n around multiples of 8, k up to and past one k-block, padded
// leading dimensions, beta 0 (over a NaN-filled C) and 1, inside guard
// zones.
func TestGemmSmall(t *testing.T) {
	caseNo := 0
	for _, im := range available() {
		for _, m := range []int{1, 3, 4, 5, 8, 16, 17, 33} {
			for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 24, 31, 64} {
				for _, k := range []int{1, 2, 16, 64, 255, 256, 257} {
					caseNo++
					p := newLogical(m, n, k, uint64(caseNo))
					lda, ldb, ldc := k+caseNo%3, n+(caseNo/3)%4, n+(caseNo/5)%3
					ga := layout(m, k, lda, caseNo%3, func(r, c int) float32 { return p.a[r*k+c] })
					gb := layout(k, n, ldb, caseNo%5, func(r, c int) float32 { return p.b[r*n+c] })
					beta := float32(caseNo % 2)
					c0 := randVals(uint64(caseNo) + 3)
					cv := make([]float32, m*n)
					for i := range cv {
						cv[i] = c0(i)
						if beta == 0 {
							cv[i] = float32(math.NaN())
						}
					}
					cInit := func(r, c int) float32 { return cv[r*n+c] }
					want := layout(m, n, ldc, 0, cInit)
					gemm(im, 1, false, false, m, n, k, 1, ga.data, lda, gb.data, ldb, beta, want.data, ldc)
					gc := layout(m, n, ldc, caseNo%7, cInit)
					gemmSmall(im, m, n, k, ga.data, lda, gb.data, ldb, beta, gc.data, ldc)
					name := fmt.Sprintf("%s m=%d n=%d k=%d beta=%v", im.name, m, n, k, beta)
					ga.check(t, name+" A")
					gb.check(t, name+" B")
					gc.check(t, name+" C")
					checkGaps(t, name+" C", gc.data, n, ldc)
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							g, w := gc.data[i*ldc+j], want.data[i*ldc+j]
							if math.Float32bits(g) != math.Float32bits(w) {
								t.Fatalf("%s: C[%d][%d] = %v, Gemm %v", name, i, j, g, w)
							}
						}
					}
				}
			}
		}
	}
}

// TestGemmPackedAOffsets checks B given by row offsets (the implicit im2col
// of stride-1 convolutions) bit for bit against GemmPackedA on the same
// matrix materialised, for every kernel of every path and for the copying
// fallback of paths without an offsets kernel; rows overlap, repeat and
// come in any order, and the columns read past n hold NaN.
func TestGemmPackedAOffsets(t *testing.T) {
	caseNo := 0
	for _, im := range available() {
		var kerns []*stridedKernel
		for _, kn := range im.strided {
			noInd := *kn
			noInd.ind = nil
			kerns = append(kerns, kn, &noInd)
		}
		for ki, kern := range kerns {
			for _, m := range []int{1, 5, 8, 14, 16, 33} {
				for _, n := range []int{1, 13, 32, 33, 100} {
					for _, k := range []int{1, 9, 144, 300} {
						caseNo++
						beta := []float32{0, 1}[caseNo%2]
						p := newLogical(m, n, k, uint64(caseNo))
						w := (n + kern.nr - 1) / kern.nr * kern.nr
						buf := make([]float32, 2*n+k+w+5)
						for i := range buf {
							buf[i] = float32(math.NaN())
						}
						offs := make([]int, k)
						bm := make([]float32, k*n) // the materialised B
						r := randVals(uint64(caseNo) + 7)
						for q := range offs {
							offs[q] = (q*7 + caseNo) % (n + k + 5)
						}
						// Fill B from distinct storage where rows do not
						// overlap; where they do, rows share values.
						for q, o := range offs {
							for j := 0; j < n; j++ {
								if buf[o+j] != buf[o+j] {
									buf[o+j] = r(0)
								}
							}
							_ = q
						}
						for q, o := range offs {
							copy(bm[q*n:(q+1)*n], buf[o:o+n])
						}
						ga := layout(m, k, k, 0, func(r, c int) float32 { return p.a[r*k+c] })
						pa := packAWith(im, kern, m, k, ga.data, k)
						c0 := randVals(uint64(caseNo) + 11)
						cv := make([]float32, m*n)
						for i := range cv {
							cv[i] = c0(i)
						}
						want := layout(m, n, n, 0, func(r, c int) float32 { return cv[r*n+c] })
						got := layout(m, n, n, 1, func(r, c int) float32 { return cv[r*n+c] })
						old := active
						active = im
						GemmPackedA(pa, n, bm, n, beta, want.data, n)
						GemmPackedAOffsets(pa, n, buf, offs, beta, got.data, n)
						active = old
						got.check(t, "C")
						for i := range cv {
							if math.Float32bits(got.data[i]) != math.Float32bits(want.data[i]) {
								t.Fatalf("%s kernel %d m=%d n=%d k=%d: C[%d] = %v, want %v", im.name, ki, m, n, k, i, got.data[i], want.data[i])
							}
						}
					}
				}
			}
		}
	}
}

// TestMaxPool2x2Rows checks the multi-row pooling bit for bit against the
// per-row rule on every path, for widths around 8 (narrow rows run into
// the next row's outputs), several row counts and row strides, in guard
// zones.
func TestMaxPool2x2Rows(t *testing.T) {
	for _, im := range available() {
		old := active
		active = im
		for _, outW := range []int{1, 3, 7, 8, 9, 14, 15, 16, 17} {
			for _, rows := range []int{1, 2, 5, 14} {
				for _, extra := range []int{0, 1, 5} {
					ld := 2*outW + extra
					n := (2*rows-1)*ld + 2*outW
					src := newGuarded(n, extra, func(i int) float32 {
						h := uint32(i*2654435761) ^ uint32(outW*977+rows)
						if h%3 == 0 {
							return specials[int(h>>7)%len(specials)]
						}
						return float32(int(h>>9)%7) - 3
					})
					dst := newGuarded(rows*outW, 1, func(int) float32 { return guard32 })
					MaxPool2x2Rows(dst.data, src.data, rows, outW, ld)
					src.check(t, "src")
					dst.check(t, "dst")
					want := make([]float32, outW)
					for r := 0; r < rows; r++ {
						maxPool2x2Generic(want, src.data[2*r*ld:], src.data[(2*r+1)*ld:])
						for j, w := range want {
							if g := dst.data[r*outW+j]; math.Float32bits(g) != math.Float32bits(w) {
								t.Fatalf("%s outW=%d rows=%d ld=%d: [%d][%d] = %v, want %v", im.name, outW, rows, ld, r, j, g, w)
							}
						}
					}
				}
			}
		}
		active = old
	}
}

// TestCopyRows checks CopyRows on every path for widths around 8, strides
// larger than the width, inside guard zones.
func TestCopyRows(t *testing.T) {
	for _, im := range available() {
		old := active
		active = im
		for _, w := range []int{1, 7, 8, 9, 15, 16, 28, 33} {
			for _, rows := range []int{1, 3, 14} {
				for _, pad := range []int{0, 1, 2, 9} {
					ss, ds := w+pad, w+(pad+1)%3
					src := newGuarded((rows-1)*ss+w, pad, func(i int) float32 { return float32(i) })
					dst := newGuarded((rows-1)*ds+w, 1, func(int) float32 { return guard32 })
					CopyRows(dst.data, src.data, rows, w, ds, ss)
					src.check(t, "src")
					dst.check(t, "dst")
					for r := 0; r < rows; r++ {
						for j := 0; j < ds && r*ds+j < len(dst.data); j++ {
							g := dst.data[r*ds+j]
							if j < w && g != src.data[r*ss+j] {
								t.Fatalf("%s w=%d rows=%d: [%d][%d] = %v, want %v", im.name, w, rows, r, j, g, src.data[r*ss+j])
							}
							if j >= w && math.Float32bits(g) != guardBits {
								t.Fatalf("%s w=%d rows=%d: gap [%d][%d] written", im.name, w, rows, r, j)
							}
						}
					}
				}
			}
		}
		active = old
	}
}

// TestCopyRowsEven checks CopyRowsEven on every path (the vector code
// reads one element past each row, so the last row is cut exactly at the
// slice's end).
func TestCopyRowsEven(t *testing.T) {
	for _, im := range available() {
		old := active
		active = im
		for _, w := range []int{1, 7, 8, 9, 14, 15, 16, 28} {
			for _, rows := range []int{1, 3, 14} {
				for _, pad := range []int{0, 1, 4} {
					ss, ds := 2*w+pad, w+pad%2
					src := newGuarded((rows-1)*ss+2*w-1, pad, func(i int) float32 { return float32(i) })
					dst := newGuarded((rows-1)*ds+w, 1, func(int) float32 { return guard32 })
					CopyRowsEven(dst.data, src.data, rows, w, ds, ss)
					src.check(t, "src")
					dst.check(t, "dst")
					for r := 0; r < rows; r++ {
						for j := 0; j < w; j++ {
							if g, want := dst.data[r*ds+j], src.data[r*ss+2*j]; g != want {
								t.Fatalf("%s w=%d rows=%d: [%d][%d] = %v, want %v", im.name, w, rows, r, j, g, want)
							}
						}
					}
				}
			}
		}
		active = old
	}
}
