package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// runLayout makes a run matrix of rows × k over a guarded buffer: runs of
// random lengths up to maxRun at random, possibly overlapping, offsets, as
// a permuted tensor axis gives; rows are stride apart (stride 1: rows
// adjacent in memory, as in a weight read along its last axis).
func runLayout(rng *rand.Rand, rows, k, stride, maxRun int) (RunMatrix, *guarded) {
	var runs []Run
	span := max(maxRun, 1) * 3
	for col := 0; col < k; {
		n := min(1+rng.IntN(maxRun), k-col)
		runs = append(runs, Run{Col: col, Off: rng.IntN(span*(k/max(maxRun, 1)+1)) + 0, Len: n})
		col += n
	}
	end := 0
	for _, r := range runs {
		end = max(end, r.Off+r.Len)
	}
	size := 0
	if rows > 0 && k > 0 {
		size = (rows-1)*stride + end
	}
	g := newGuarded(size, rng.IntN(4), func(int) float32 { return float32(rng.NormFloat64()) })
	return RunMatrix{Data: g.data, RowStride: stride, Runs: runs}, g
}

// gathered copies x's rows × k matrix out, row-major.
func gathered(x RunMatrix, rows, k int) []float32 {
	out := make([]float32, rows*k)
	for i := 0; i < rows; i++ {
		for _, r := range x.Runs {
			copy(out[i*k+r.Col:i*k+r.Col+r.Len], x.Data[i*x.RowStride+r.Off:][:r.Len])
		}
	}
	return out
}

// TestGemmRuns checks GemmRuns against Gemm on gathered copies, bit for
// bit, on every path, with small cache blocks (so that k-blocks and panels
// cut through runs) and with the default ones, for runs from single
// columns to longer than a k-block, and rows adjacent or strided.
func TestGemmRuns(t *testing.T) {
	withAllWorkers(t)
	rng := rand.New(rand.NewPCG(7, 8))
	type shape struct{ m, n, k, strideA, strideB, maxRun int }
	var shapes []shape
	for _, mn := range [][2]int{{1, 1}, {3, 5}, {17, 9}, {33, 40}, {64, 64}} {
		for _, k := range []int{1, 2, 9, 31, 300, 600} {
			for _, maxRun := range []int{1, 3, 9, 40, 700} {
				for _, st := range [][2]int{{1, 1}, {9, 9}, {k + 5, 1}, {1, 2 * k}} {
					shapes = append(shapes, shape{mn[0], mn[1], k, st[0], st[1], maxRun})
				}
			}
		}
	}
	for _, im := range available() {
		for bi, blocks := range []string{"default blocks", "small blocks"} {
			sg := im.sgemm
			if bi == 1 {
				sg = smallBlocks(im.sgemm)
			}
			imb := *im
			imb.sgemm = sg
			for si, sh := range shapes {
				if bi == 1 && si%3 != 0 {
					continue // a third of the shapes suffice to cut runs
				}
				name := fmt.Sprintf("%s/%s/%+v", im.name, blocks, sh)
				a, ga := runLayout(rng, sh.m, sh.k, sh.strideA, sh.maxRun)
				b, gb := runLayout(rng, sh.n, sh.k, sh.strideB, sh.maxRun)
				ldc := sh.n + 3
				want := make([]float32, sh.m*ldc)
				gemm(&imb, 2, false, true, sh.m, sh.n, sh.k, 1, gathered(a, sh.m, sh.k), sh.k, gathered(b, sh.n, sh.k), sh.k, 0, want, ldc)
				c := newGuarded(sh.m*ldc, 1, func(int) float32 { return float32(math.NaN()) })
				gemmRuns(&imb, 2, sh.m, sh.n, sh.k, a, b, c.data, ldc)
				for i := 0; i < sh.m; i++ {
					for j := 0; j < ldc; j++ {
						got, w := c.data[i*ldc+j], want[i*ldc+j]
						if j >= sh.n {
							// Padding between rows is not written.
							if !math.IsNaN(float64(got)) {
								t.Fatalf("%s: padding C[%d][%d] written: %v", name, i, j, got)
							}
							continue
						}
						if math.Float32bits(got) != math.Float32bits(w) {
							t.Fatalf("%s: C[%d][%d] = %v, Gemm on copies gives %v", name, i, j, got, w)
						}
					}
				}
				c.check(t, name+" C")
				// GemmF64AccRuns adds to C like GemmF64Acc on the copies.
				want64 := make([]float64, sh.m*ldc)
				got64 := newGuarded64(sh.m*ldc, 1, func(i int) float64 { return float64(i%7) - 3 })
				copy(want64, got64.data)
				imb.dgemm = im.dgemm
				if bi == 1 {
					imb.dgemm = smallBlocks(im.dgemm)
				}
				gemmF64Acc(&imb, 2, false, true, sh.m, sh.n, sh.k, gathered(a, sh.m, sh.k), sh.k, gathered(b, sh.n, sh.k), sh.k, want64, ldc)
				gemmF64AccRuns(&imb, 2, sh.m, sh.n, sh.k, a, b, got64.data, ldc)
				for i := range want64 {
					if math.Float64bits(got64.data[i]) != math.Float64bits(want64[i]) {
						t.Fatalf("%s: GemmF64AccRuns element %d = %v, GemmF64Acc on copies gives %v", name, i, got64.data[i], want64[i])
					}
				}
				got64.check(t, name+" C float64")
				ga.check(t, name+" A")
				gb.check(t, name+" B")
			}
		}
	}
}

func TestGemmRunsPanics(t *testing.T) {
	data := make([]float32, 20)
	ok := RunMatrix{Data: data, RowStride: 5, Runs: []Run{{0, 0, 2}, {2, 3, 2}}}
	c := make([]float32, 16)
	tests := []struct {
		name string
		a    RunMatrix
		m, k int
	}{
		{"gap between runs", RunMatrix{data, 5, []Run{{0, 0, 2}, {3, 3, 1}}}, 4, 4},
		{"runs cover too few columns", ok, 4, 5},
		{"runs cover too many columns", ok, 4, 3},
		{"empty run", RunMatrix{data, 5, []Run{{0, 0, 0}, {0, 0, 4}}}, 4, 4},
		{"negative offset", RunMatrix{data, 5, []Run{{0, -1, 4}}}, 4, 4},
		{"last row past the data", RunMatrix{data, 6, ok.Runs}, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			GemmRuns(0, tt.m, 4, tt.k, tt.a, ok, c, 4)
		})
	}
	// The well-formed case does not panic.
	GemmRuns(0, 4, 4, 4, ok, ok, c, 4)
}

// BenchmarkGemmRunsConvIn is weight matching's product for the input-axis
// site of a 512×512×3×3 convolution, read in place with GemmRuns, against
// Gemm on the gathered copies (which the copies themselves cost extra).
func BenchmarkGemmRunsConvIn(b *testing.B) {
	const o, i, kk = 512, 512, 9
	w := make([]float32, o*i*kk)
	for x := range w {
		w[x] = float32(x%97) - 48
	}
	perm := rand.New(rand.NewPCG(1, 2)).Perm(o)
	var ra, rb []Run
	for q := 0; q < o; q++ {
		ra = append(ra, Run{Col: q * kk, Off: q * i * kk, Len: kk})
		rb = append(rb, Run{Col: q * kk, Off: perm[q] * i * kk, Len: kk})
	}
	a, bm := RunMatrix{w, kk, ra}, RunMatrix{w, kk, rb}
	c := make([]float32, i*i)
	b.Run("runs", func(b *testing.B) {
		for b.Loop() {
			GemmRuns(0, i, i, o*kk, a, bm, c, i)
		}
	})
	ga, gb := gathered(a, i, o*kk), gathered(bm, i, o*kk)
	b.Run("copies", func(b *testing.B) {
		for b.Loop() {
			Gemm(false, true, i, i, o*kk, 1, ga, o*kk, gb, o*kk, 0, c, i)
		}
	})
}

// BenchmarkGemmRunsPermutedCols is the product for the output-axis site of
// a 4096×4096 linear weight whose input axis is permuted: B's columns are
// single elements (runs of 1) from rows 4096 apart.
func BenchmarkGemmRunsPermutedCols(b *testing.B) {
	const n = 2048
	w := make([]float32, n*n)
	for x := range w {
		w[x] = float32(x%97) - 48
	}
	perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
	rb := make([]Run, n)
	for q := range rb {
		rb[q] = Run{Col: q, Off: perm[q], Len: 1}
	}
	a, bm := RunMatrix{w, n, []Run{{0, 0, n}}}, RunMatrix{w, n, rb}
	c := make([]float32, n*n)
	b.Run("runs", func(b *testing.B) {
		for b.Loop() {
			GemmRuns(0, n, n, n, a, bm, c, n)
		}
	})
	ga, gb := gathered(a, n, n), gathered(bm, n, n)
	b.Run("copies", func(b *testing.B) {
		for b.Loop() {
			Gemm(false, true, n, n, n, 1, ga, n, gb, n, 0, c, n)
		}
	})
}
