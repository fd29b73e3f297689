package activation

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// TestChannelStatsAdd: channelStats.add over two batches equals float64
// sums of the same values (to the float32 rounding of its chunks) for
// sites of few and of many channels (the concurrent-chunk and the
// multi-core-product paths), of one position per sample (Gemm outputs) and
// of many, with chunks that split the batches anywhere; and its sums are
// the same bits on one core as on all.
func TestChannelStatsAdd(t *testing.T) {
	defer func(c int) { crossChunk = c }(crossChunk)
	for _, tc := range []struct{ c, outer, inner, chunk int }{
		{3, 7, 1, 4096}, {3, 7, 1, 2}, {5, 9, 13, 20}, {17, 6, 784, 4096}, {17, 6, 784, 7},
		{300, 5, 1, 3}, {300, 4, 49, 100}, {260, 3, 196, 4096},
	} {
		t.Run(fmt.Sprintf("c=%d/outer=%d/inner=%d/chunk=%d", tc.c, tc.outer, tc.inner, tc.chunk), func(t *testing.T) {
			crossChunk = tc.chunk
			r := rand.New(rand.NewPCG(uint64(tc.c), uint64(tc.inner)))
			shape := []int{tc.outer, tc.c}
			if tc.inner > 1 {
				shape = append(shape, tc.inner)
			}
			n := tc.outer * tc.c * tc.inner
			batches := make([][2][]float32, 2)
			for k := range batches {
				for side := range 2 {
					x := make([]float32, n)
					for i := range x {
						x[i] = float32(r.NormFloat64() + 0.5) // a mean, as after a Relu
					}
					batches[k][side] = x
				}
			}
			run := func() *channelStats {
				s := newChannelStats("x", 1, tc.c)
				for _, bt := range batches {
					if err := s.add(shape, bt[0], bt[1]); err != nil {
						t.Fatal(err)
					}
				}
				return s
			}
			got := run()
			want := newChannelStats("x", 1, tc.c)
			for _, bt := range batches {
				for o := range tc.outer {
					for i := range tc.c {
						for q := range tc.inner {
							va, vb := float64(bt[0][(o*tc.c+i)*tc.inner+q]), float64(bt[1][(o*tc.c+i)*tc.inner+q])
							want.sumA[i] += va
							want.sumB[i] += vb
							want.sqA[i] += va * va
							want.sqB[i] += vb * vb
							for j := range tc.c {
								want.cross[i*tc.c+j] += va * float64(bt[1][(o*tc.c+j)*tc.inner+q])
							}
						}
					}
				}
				want.n += float64(tc.outer * tc.inner)
			}
			if err := sameStats(got, want); err != nil {
				t.Fatal(err)
			}
			prev := runtime.GOMAXPROCS(1)
			one := run()
			runtime.GOMAXPROCS(prev)
			if !slices.Equal(one.cross, got.cross) || !slices.Equal(one.sumA, got.sumA) || !slices.Equal(one.sqB, got.sqB) {
				t.Fatal("the sums on one core differ from those on all cores")
			}
		})
	}
}
