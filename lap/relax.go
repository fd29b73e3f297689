package lap

// The hot loops. Each has a portable version and, on amd64 with AVX2, a
// vector one that computes exactly the same result (same IEEE operations
// per entry in the same order, the same index on ties), so a solve gives
// bit-identical answers on every machine.

// The loops of the Dijkstra search. Both lower d[k] to
// off + (v[k] − row[k]) where that is shorter, recording pred[k] = i, and
// return the smallest d[k] and its lowest index. They are kept out of line
// so the compiler allocates registers for these loops alone instead of
// spilling augment's other variables. The result is defined exactly (same
// IEEE operations per column, lowest index on ties), so the vector kernel
// on amd64 and the portable loop give bit-identical solves.

// relax runs over all columns; finalised ones carry d = v = +Inf and so
// neither change nor win.
func relax(row, v, d []float64, pred []int32, i int32, off float64) (best float64, bk int) {
	if useAVX2 && len(row) >= 8 {
		return relaxVector(row, v, d, pred, i, off)
	}
	return relaxGeneric(row, v, d, pred, i, off, 0, inf, -1)
}

// relaxGeneric is the portable relax over row[from:], continuing a minimum
// search whose best so far is (best, bk).
//
//go:noinline
func relaxGeneric(row, v, d []float64, pred []int32, i int32, off float64, from int, best float64, bk int) (float64, int) {
	v = v[:len(row)]
	d = d[:len(row)]
	pred = pred[:len(row)]
	for k := from; k < len(row); k++ {
		dk := d[k]
		if h := off + (v[k] - row[k]); h < dk {
			d[k] = h
			pred[k] = i
			dk = h
		}
		if dk < best {
			best, bk = dk, k
		}
	}
	return best, bk
}

// relaxList is relax over the columns in cols only, which augment keeps in
// increasing order. Its indirect access costs more per column than
// relax's sequential pass, so augment switches to it only once the
// finalised columns it skips are a large share.
//
//go:noinline
func relaxList(row, v, d []float64, pred []int32, cols []int32, i int32, off float64) (best float64, bk int) {
	best, bk = inf, -1
	for _, k := range cols {
		dk := d[k]
		if h := off + (v[k] - row[k]); h < dk {
			d[k] = h
			pred[k] = i
			dk = h
		}
		if dk < best {
			best, bk = dk, int(k)
		}
	}
	return best, bk
}

// twoMin returns the two smallest values of v[j] − row[j] in the order of
// (value, index) pairs: (u1, j1) is the smallest value at its lowest index,
// (u2, j2) the next pair, so u2 == u1 on a tie. len(row) must be ≥ 2. It
// is the search of augmenting row reduction and reduction transfer.
func twoMin(row, v []float64) (u1 float64, j1 int, u2 float64, j2 int) {
	if useAVX2 && len(row) >= 8 {
		return twoMinVector(row, v)
	}
	return twoMinGeneric(row, v, 0, inf, -1, inf, -1)
}

// twoMinGeneric is the portable twoMin over row[from:], continuing from
// the pairs found so far. Scanning in index order, strict comparisons keep
// the lowest index among equal values.
//
//go:noinline
func twoMinGeneric(row, v []float64, from int, u1 float64, j1 int, u2 float64, j2 int) (float64, int, float64, int) {
	v = v[:len(row)]
	for j := from; j < len(row); j++ {
		if h := v[j] - row[j]; h < u2 {
			if h < u1 {
				u2, j2 = u1, j1
				u1, j1 = h, j
			} else {
				u2, j2 = h, j
			}
		}
	}
	return u1, j1, u2, j2
}

// pairLess orders (value, index) pairs.
func pairLess(a float64, ai int, b float64, bi int) bool {
	return a < b || (a == b && ai < bi)
}

// colMax folds row i into the column maxima of column reduction: where
// row[j] > vmax[j] it sets vmax[j] = row[j] and arg[j] = i (strict, so the
// first maximal row wins). It returns the row's sum of squares for
// rowSquaresOK, accumulated in four interleaved partial sums (entry j into
// sum j mod 4, the last len(row) mod 4 entries into sum 0) so the vector
// kernel can reproduce it exactly.
func colMax(row, vmax []float64, arg []int32, i int32) float64 {
	var acc [4]float64
	from := 0
	if useAVX2 && len(row) >= 8 {
		from = len(row) &^ 7
		colMaxAVX2(&row[0], &vmax[0], &arg[0], from, i, &acc)
	}
	return colMaxGeneric(row, vmax, arg, i, from, &acc)
}

// colMaxGeneric is the portable colMax over row[from:] (from a multiple of
// 4), adding to the partial sums in acc.
//
//go:noinline
func colMaxGeneric(row, vmax []float64, arg []int32, i int32, from int, acc *[4]float64) float64 {
	vmax = vmax[:len(row)]
	arg = arg[:len(row)]
	a0, a1, a2, a3 := acc[0], acc[1], acc[2], acc[3]
	j := from
	for ; j+3 < len(row); j += 4 {
		c0, c1, c2, c3 := row[j], row[j+1], row[j+2], row[j+3]
		// The conversions forbid fusing into FMA, which the vector
		// kernel does not use.
		a0 += float64(c0 * c0)
		a1 += float64(c1 * c1)
		a2 += float64(c2 * c2)
		a3 += float64(c3 * c3)
		if c0 > vmax[j] {
			vmax[j] = c0
			arg[j] = i
		}
		if c1 > vmax[j+1] {
			vmax[j+1] = c1
			arg[j+1] = i
		}
		if c2 > vmax[j+2] {
			vmax[j+2] = c2
			arg[j+2] = i
		}
		if c3 > vmax[j+3] {
			vmax[j+3] = c3
			arg[j+3] = i
		}
	}
	for ; j < len(row); j++ {
		c := row[j]
		a0 += float64(c * c)
		if c > vmax[j] {
			vmax[j] = c
			arg[j] = i
		}
	}
	return a0 + a1 + a2 + a3
}

// rowMin returns the smallest v[j] − row[j] with its lowest index j, and
// the row's sum of squares accumulated as in colMax. It is the validating
// pass of a warm start.
func rowMin(row, v []float64) (best float64, bj int, sumSq float64) {
	var acc [4]float64
	best, bj = inf, -1
	from := 0
	if useAVX2 && len(row) >= 8 {
		from = len(row) &^ 7
		var vals [8]float64
		var idxs [8]int64
		rowMinAVX2(&row[0], &v[0], from, &vals, &idxs, &acc)
		for l, val := range vals {
			if val < best || (val == best && int(idxs[l]) < bj) {
				best, bj = val, int(idxs[l])
			}
		}
	}
	return rowMinGeneric(row, v, from, best, bj, &acc)
}

// rowMinGeneric is the portable rowMin over row[from:] (from a multiple of
// 4), continuing from (best, bj) and the partial sums in acc.
//
//go:noinline
func rowMinGeneric(row, v []float64, from int, best float64, bj int, acc *[4]float64) (float64, int, float64) {
	v = v[:len(row)]
	a0, a1, a2, a3 := acc[0], acc[1], acc[2], acc[3]
	j := from
	for ; j+3 < len(row); j += 4 {
		c0, c1, c2, c3 := row[j], row[j+1], row[j+2], row[j+3]
		a0 += float64(c0 * c0)
		a1 += float64(c1 * c1)
		a2 += float64(c2 * c2)
		a3 += float64(c3 * c3)
		if h := v[j] - c0; h < best {
			best, bj = h, j
		}
		if h := v[j+1] - c1; h < best {
			best, bj = h, j+1
		}
		if h := v[j+2] - c2; h < best {
			best, bj = h, j+2
		}
		if h := v[j+3] - c3; h < best {
			best, bj = h, j+3
		}
	}
	for ; j < len(row); j++ {
		c := row[j]
		a0 += float64(c * c)
		if h := v[j] - c; h < best {
			best, bj = h, j
		}
	}
	return best, bj, a0 + a1 + a2 + a3
}
