package sitelayout

import (
	"math/rand/v2"
	"testing"
)

// TestColOffsets checks the site layout against direct index arithmetic on
// a 4-D tensor, for every axis, blocks, an offset range and permuted maps.
func TestColOffsets(t *testing.T) {
	dims := []int{3, 8, 2, 5}
	st := Strides(dims)
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
			rowOff := RowOffsets(dims, axis, block, 0, rows)
			colOff := ColOffsets(dims, axis, block, maps, nil)
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

// BenchmarkGatherTranspose gathers the input-axis site of a 4096×4096
// weight: every run is one element, so the gather is a transpose.
func BenchmarkGatherTranspose(b *testing.B) {
	dims := []int{4096, 4096}
	data := make([]float32, dims[0]*dims[1])
	rowOff := RowOffsets(dims, 1, 1, 0, dims[1])
	colOff := ColOffsets(dims, 1, 1, make([][]int, 2), nil)
	runs := RunsOf(colOff, nil)
	dst := make([]float32, len(data))
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		GatherMatrix(dst, data, rowOff, runs, len(colOff))
	}
}

// BenchmarkGatherConvIn gathers the input-channel site of a 512×512×3×3
// convolution weight: runs of 9.
func BenchmarkGatherConvIn(b *testing.B) {
	dims := []int{512, 512, 3, 3}
	data := make([]float32, 512*512*9)
	rowOff := RowOffsets(dims, 1, 1, 0, dims[1])
	colOff := ColOffsets(dims, 1, 1, make([][]int, 4), nil)
	runs := RunsOf(colOff, nil)
	dst := make([]float32, len(data))
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		GatherMatrix(dst, data, rowOff, runs, len(colOff))
	}
}

// BenchmarkGatherConvOutPermuted gathers the output-channel site of a
// 512×512×3×3 convolution weight whose input channels are permuted: runs
// of 9 from scattered places in each row.
func BenchmarkGatherConvOutPermuted(b *testing.B) {
	dims := []int{512, 512, 3, 3}
	data := make([]float32, 512*512*9)
	rowOff := RowOffsets(dims, 0, 1, 0, dims[0])
	maps := make([][]int, 4)
	maps[1] = rand.New(rand.NewPCG(1, 2)).Perm(512)
	colOff := ColOffsets(dims, 0, 1, maps, nil)
	runs := RunsOf(colOff, nil)
	dst := make([]float32, len(data))
	b.SetBytes(int64(4 * len(data)))
	for b.Loop() {
		GatherMatrix(dst, data, rowOff, runs, len(colOff))
	}
}

// TestRepeatLayout: a site that holds every block of its group several
// times (graph.WeightSite.Repeat) is read as rows = units (copy 0) and
// columns = (axes before, copy, index within the unit's block, axes
// after); element (u, c) must be at the copy's index on the axis,
// ((b·rep + j)·d + i)·block + k for unit u = b·d + i.
func TestRepeatLayout(t *testing.T) {
	const n, d, rep, block, off = 6, 3, 2, 2, 4
	dims := []int{2, off + n*rep*block + 1, 3}
	rows := RepeatRowOffsets(dims, 1, block, off, n, d, rep)
	cols := RepeatColOffsets(dims, 1, block, rep, d*block, make([][]int, len(dims)), nil)
	if len(cols) != dims[0]*rep*block*dims[2] {
		t.Fatalf("%d columns", len(cols))
	}
	seen := map[int]bool{}
	for u := range n {
		b, i := u/d, u%d
		c := 0
		for i0 := range dims[0] {
			for j := range rep {
				for k := range block {
					for i2 := range dims[2] {
						axis := off + ((b*rep+j)*d+i)*block + k
						want := (i0*dims[1]+axis)*dims[2] + i2
						if got := rows[u] + cols[c]; got != want {
							t.Fatalf("unit %d column %d: offset %d, want %d", u, c, got, want)
						}
						if UnitIndex(u, j, d, rep, block, off)+k != axis {
							t.Fatalf("UnitIndex(%d, %d) = %d, want %d", u, j, UnitIndex(u, j, d, rep, block, off), axis-k)
						}
						seen[want] = true
						c++
					}
				}
			}
		}
	}
	if len(seen) != n*len(cols) {
		t.Fatalf("%d distinct elements for %d units × %d columns", len(seen), n, len(cols))
	}
}
