//go:build !noasm && !appengine && !gccgo

package lap

import "github.com/klauspost/cpuid/v2"

// useAVX2 selects the AVX2 kernels (the CPU has AVX2 and the OS saves the
// YMM registers; cpuid checks both, as package simd does); it is a
// variable so tests can compare them with the portable loops on the same
// machine.
var useAVX2 = cpuid.CPU.Supports(cpuid.AVX2)

// vectorBuild says that this build has the vector kernels (whether the CPU
// can run them is useAVX2).
const vectorBuild = true

// relaxAVX2 runs relax over the first n columns (n a multiple of 8) eight
// at a time and leaves, for each of the eight lanes (columns ≡ lane mod 8),
// the lane's smallest d and its lowest index in vals and idxs.
//
//go:noescape
func relaxAVX2(row, v, d *float64, pred *int32, n int, i int32, off float64, vals *[8]float64, idxs *[8]int64)

// relaxVector is relax with the AVX2 kernel for the bulk of the columns and
// the portable loop for the last len(row) mod 8.
func relaxVector(row, v, d []float64, pred []int32, i int32, off float64) (float64, int) {
	n := len(row)
	v, d, pred = v[:n], d[:n], pred[:n] // the kernel trusts these lengths
	n8 := n &^ 7
	var vals [8]float64
	var idxs [8]int64
	relaxAVX2(&row[0], &v[0], &d[0], &pred[0], n8, i, off, &vals, &idxs)
	// Lanes hold interleaved columns, so the lowest index among the
	// lanes' minima that tie is the lowest index overall.
	best, bk := inf, -1
	for l, val := range vals {
		if val < best || (val == best && int(idxs[l]) < bk) {
			best, bk = val, int(idxs[l])
		}
	}
	return relaxGeneric(row, v, d, pred, i, off, n8, best, bk)
}

// twoMinAVX2 runs twoMin over the first n columns (n a multiple of 8) and
// leaves, for each lane (columns ≡ lane mod 8), the lane's two smallest
// (value, index) pairs: values in vals[lane] and vals[8+lane], indices in
// idxs likewise. A lane that saw fewer than two columns holds +Inf.
//
//go:noescape
func twoMinAVX2(row, v *float64, n int, vals *[16]float64, idxs *[16]int64)

// twoMinVector is twoMin with the AVX2 kernel for the bulk of the columns;
// the global two smallest pairs are among the lanes' two smallest.
func twoMinVector(row, v []float64) (float64, int, float64, int) {
	n := len(row)
	v = v[:n]
	n8 := n &^ 7
	var vals [16]float64
	var idxs [16]int64
	twoMinAVX2(&row[0], &v[0], n8, &vals, &idxs)
	u1, j1, u2, j2 := inf, -1, inf, -1
	for l, h := range vals {
		if h == inf {
			continue // placeholder of a lane with fewer than two columns
		}
		j := int(idxs[l])
		if pairLess(h, j, u1, j1) {
			u2, j2 = u1, j1
			u1, j1 = h, j
		} else if pairLess(h, j, u2, j2) {
			u2, j2 = h, j
		}
	}
	return twoMinGeneric(row, v, n8, u1, j1, u2, j2)
}

// colMaxAVX2 runs colMax over the first n entries (n a multiple of 8),
// adding the squares to acc lane by lane in index order.
//
//go:noescape
func colMaxAVX2(row, vmax *float64, arg *int32, n int, i int32, acc *[4]float64)

// rowMinAVX2 runs rowMin over the first n entries (n a multiple of 8),
// leaving each lane's smallest v−row and its lowest index in vals and idxs
// (lanes are columns ≡ lane mod 8) and adding the squares to acc.
//
//go:noescape
func rowMinAVX2(row, v *float64, n int, vals *[8]float64, idxs *[8]int64, acc *[4]float64)
