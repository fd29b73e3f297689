package permute

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRadixSort compares radixSort with a comparison sort on the same
// keys, over lengths around the digit sizes and values with ties, signed
// zeros and infinities.
func TestRadixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.SmallestNonzeroFloat32, 1, 1, -1}
	for _, n := range []int{0, 1, 2, 7, 64, 65, 100, 2047, 2048, 2049, 5000} {
		x := make([]float32, n)
		for i := range x {
			switch r.IntN(4) {
			case 0:
				x[i] = special[r.IntN(len(special))]
			case 1:
				x[i] = float32(r.NormFloat64() * 1e-3)
			default:
				x[i] = float32(r.NormFloat64())
			}
		}
		want := slices.Clone(x)
		slices.SortFunc(want, func(a, b float32) int {
			ka, kb := floatKey(a), floatKey(b)
			return int(int64(ka) - int64(kb))
		})
		radixSort(x, make([]uint32, 2*n))
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: x[%d] = %v, want %v", n, i, x[i], want[i])
			}
		}
	}
}

// TestColOffsets checks the site layout against direct index arithmetic on
// a 4-D tensor, for every axis, blocks, an offset range and permuted maps.
func TestColOffsets(t *testing.T) {
	dims := []int{3, 8, 2, 5}
	st := strides(dims)
	r := rand.New(rand.NewPCG(3, 4))
	for axis := range dims {
		for _, block := range []int{1, 2} {
			if dims[axis]%block != 0 {
				continue
			}
			maps := make([][]int, len(dims))
			for k := range dims {
				if k != axis && r.IntN(2) == 0 {
					maps[k] = r.Perm(dims[k])
				}
			}
			rows := dims[axis] / block
			rowOff := rowOffsets(dims, axis, block, 0, rows)
			colOff := colOffsets(dims, axis, block, maps, nil)
			// Enumerate (row, col) as gatherRows did: outer indices, block, inner indices.
			idx := make([]int, len(dims))
			for row := 0; row < rows; row++ {
				c := 0
				var walk func(k int)
				walk = func(k int) {
					if k == len(dims) {
						off := 0
						for j, i := range idx {
							if j != axis && maps[j] != nil {
								i = maps[j][i]
							}
							off += i * st[j]
						}
						if got := rowOff[row] + colOff[c]; got != off {
							t.Fatalf("axis %d block %d: (%d,%d) at %d, want %d", axis, block, row, c, got, off)
						}
						c++
						return
					}
					if k == axis {
						for b := 0; b < block; b++ {
							idx[k] = row*block + b
							walk(k + 1)
						}
						return
					}
					for i := 0; i < dims[k]; i++ {
						idx[k] = i
						walk(k + 1)
					}
				}
				walk(0)
				if c != len(colOff) {
					t.Fatalf("axis %d: %d columns, want %d", axis, len(colOff), c)
				}
			}
		}
	}
}

func BenchmarkSortRows(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 512, 4608
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	m := make([]float32, len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		copy(m, src)
		sortRows(m, cols)
	}
}

// BenchmarkGatherTranspose gathers the input-axis site of a 4096×4096
// weight: every run is one element, so the gather is a transpose.
func BenchmarkGatherTranspose(b *testing.B) {
	dims := []int{4096, 4096}
	data := make([]float32, dims[0]*dims[1])
	rowOff := rowOffsets(dims, 1, 1, 0, dims[1])
	colOff := colOffsets(dims, 1, 1, make([][]int, 2), nil)
	runs := runsOf(colOff, nil)
	dst := make([]float32, len(data))
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		gatherMatrix(dst, data, rowOff, runs, len(colOff))
	}
}

// BenchmarkGatherConvIn gathers the input-channel site of a 512×512×3×3
// convolution weight: runs of 9.
func BenchmarkGatherConvIn(b *testing.B) {
	dims := []int{512, 512, 3, 3}
	data := make([]float32, 512*512*9)
	rowOff := rowOffsets(dims, 1, 1, 0, dims[1])
	colOff := colOffsets(dims, 1, 1, make([][]int, 4), nil)
	runs := runsOf(colOff, nil)
	dst := make([]float32, len(data))
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		gatherMatrix(dst, data, rowOff, runs, len(colOff))
	}
}
