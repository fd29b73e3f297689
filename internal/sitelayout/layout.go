package sitelayout

import (
	"runtime"
	"sync"

	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// A group site of a weight is read as a matrix: row r is unit r of the
// group and its columns are every index of the other axes (and of the
// unit's block). Element (r, c) lives at offset rowOff[r] + colOff[c] of
// the row-major tensor. Permutations of the other groups only permute the
// columns, so they live entirely in colOff, and a cost matrix can be
// updated for just the columns whose offsets changed.

// Strides returns the row-major Strides of dims.
func Strides(dims []int) []int {
	s := make([]int, len(dims))
	n := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = n
		n *= dims[i]
	}
	return s
}

// RowOffsets returns the offset of each of rows units of size block that
// start at index off of axis.
func RowOffsets(dims []int, axis, block, off, rows int) []int {
	return RepeatRowOffsets(dims, axis, block, off, rows, rows, 1)
}

// UnitIndex is the first index on its axis of copy j of unit u of a site
// whose axis holds every block of d units rep times in a row, each unit
// block indices wide, from index off on (graph.WeightSite.Repeat): with
// rep 1, off + u·block.
func UnitIndex(u, j, d, rep, block, off int) int {
	return off + ((u/d*rep+j)*d+u%d)*block
}

// RepeatRowOffsets is RowOffsets for a site that holds every block of d
// units rep times (see UnitIndex): row u starts at its copy 0, and the
// other copies are columns (RepeatColOffsets). Rows are evenly spaced
// within a block, not across blocks when rep > 1.
func RepeatRowOffsets(dims []int, axis, block, off, rows, d, rep int) []int {
	st := Strides(dims)[axis]
	r := make([]int, rows)
	for i := range r {
		r[i] = UnitIndex(i, 0, d, rep, block, off) * st
	}
	return r
}

// ColOffsets writes into dst (grown as needed) the offset of every column
// of a site on axis with units of size block: the indices of the axes
// before axis, then the index within the block, then the axes after axis,
// in row-major order. maps[k], when not nil, says which index of axis k
// each index reads (a permutation of the other groups); maps[axis] is
// ignored.
func ColOffsets(dims []int, axis, block int, maps [][]int, dst []int) []int {
	return RepeatColOffsets(dims, axis, block, 1, 0, maps, dst)
}

// RepeatColOffsets is ColOffsets for a site whose units have rep copies
// repStride indices apart on axis (see UnitIndex): the copy is a column
// index, after the axes before axis and before the index within the block.
func RepeatColOffsets(dims []int, axis, block, rep, repStride int, maps [][]int, dst []int) []int {
	st := Strides(dims)
	cols := block * rep
	for k, d := range dims {
		if k != axis {
			cols *= d
		}
	}
	if cap(dst) < cols {
		dst = make([]int, cols)
	}
	dst = dst[:cols]
	if cols == 0 {
		return dst
	}
	// Expand axis by axis in place, from the back so that every entry
	// is read before it is overwritten.
	dst[0] = 0
	n := 1
	expand := func(size, stride int, m []int) {
		for j := n - 1; j >= 0; j-- {
			base := dst[j]
			out := dst[j*size : (j+1)*size]
			if m == nil {
				for i := range out {
					out[i] = base + i*stride
				}
			} else {
				for i := range out {
					out[i] = base + m[i]*stride
				}
			}
		}
		n *= size
	}
	for k := 0; k < axis; k++ {
		expand(dims[k], st[k], maps[k])
	}
	expand(rep, repStride*st[axis], nil)
	expand(block, st[axis], nil)
	for k := axis + 1; k < len(dims); k++ {
		expand(dims[k], st[k], maps[k])
	}
	return dst
}

// run is a stretch of columns whose offsets are consecutive: Len columns
// from Col on, at offsets from Off on. It is simd's type, so that a site
// can be multiplied in place (simd.GemmRuns).
type run = simd.Run

// RunsOf splits column offsets into runs, so that a gather copies blocks.
func RunsOf(colOff []int, dst []run) []run {
	dst = dst[:0]
	for c := 0; c < len(colOff); {
		e := c + 1
		for e < len(colOff) && colOff[e] == colOff[e-1]+1 {
			e++
		}
		dst = append(dst, run{Col: c, Off: colOff[c], Len: e - c})
		c = e
	}
	return dst
}

// GatherMatrix copies the rows × len(colOff) matrix of data given by rowOff
// and the runs of colOff into dst, in parallel for large matrices.
func GatherMatrix(dst, data []float32, rowOff []int, runs []run, cols int) {
	rows := len(rowOff)
	workers := min(runtime.GOMAXPROCS(0), rows, rows*cols/(1<<18)+1)
	InParallel(rows, workers, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			base := rowOff[r]
			row := dst[r*cols : (r+1)*cols]
			for _, q := range runs {
				CopyRun(row[q.Col:q.Col+q.Len], data[base+q.Off:base+q.Off+q.Len])
			}
		}
	})
}

// InParallel calls fn on [0, n) cut into workers near-equal pieces, on as
// many goroutines (the first on the caller's), and waits for them. Plain
// goroutines rather than simd.Parallel, whose caller and pool busy-wait:
// these loops can run beside the single-threaded assignment solver (see
// match.Weights' look-ahead), whose core that would take.
func InParallel(n, workers int, fn func(lo, hi int)) {
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(n*w/workers, n*(w+1)/workers)
		}()
	}
	fn(0, n/workers)
	wg.Wait()
}

// CopyRun is copy for the short runs of a gather, where a call to copy
// costs more than the values (single elements of a transposed matrix, a
// conv kernel's 9 taps).
func CopyRun(dst, src []float32) {
	if len(src) >= 32 {
		copy(dst, src)
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = v
	}
}
