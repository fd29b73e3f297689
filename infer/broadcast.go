package infer

import "fmt"

// broadcastShape returns the numpy (multidirectional) broadcast of shapes.
func broadcastShape(shapes ...[]int) ([]int, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := &out[off+i]
			switch {
			case d == *o || d == 1:
			case *o == 1:
				*o = d
			default:
				return nil, fmt.Errorf("shapes %v cannot be broadcast together", shapes)
			}
		}
	}
	return out, nil
}

// bcast iterates over an output shape in runs along its innermost dimension,
// giving for each input the offset at the start of the run and whether the
// input advances along the run (inc 1) or repeats one element (inc 0).
type bcast struct {
	dims    []int   // coalesced output dims (at least one)
	strides [][]int // per input, per coalesced dim: element stride, 0 where broadcast
	total   int
}

func newBcast(out []int, ins ...[]int) *bcast {
	rank := len(out)
	// Element strides of each input, aligned to out, 0 on broadcast dims.
	st := make([][]int, len(ins))
	for k, s := range ins {
		st[k] = make([]int, rank)
		acc := 1
		for i := rank - 1; i >= 0; i-- {
			j := i - (rank - len(s))
			if j < 0 {
				continue
			}
			if s[j] != 1 || out[i] == 1 {
				st[k][i] = acc
			}
			acc *= s[j]
		}
	}
	// Coalesce: drop size-1 dims, merge neighbours that are contiguous for
	// every input.
	b := &bcast{total: numel(out), strides: make([][]int, len(ins))}
	for i := 0; i < rank; i++ {
		if out[i] == 1 {
			continue
		}
		if n := len(b.dims); n > 0 {
			merge := true
			for k := range ins {
				if b.strides[k][n-1] != st[k][i]*out[i] {
					merge = false
					break
				}
			}
			if merge {
				b.dims[n-1] *= out[i]
				for k := range ins {
					b.strides[k][n-1] = st[k][i]
				}
				continue
			}
		}
		b.dims = append(b.dims, out[i])
		for k := range ins {
			b.strides[k] = append(b.strides[k], st[k][i])
		}
	}
	if len(b.dims) == 0 {
		b.dims = []int{1}
		for k := range ins {
			b.strides[k] = []int{1}
		}
	}
	return b
}

// inner is the length of each run.
func (b *bcast) inner() int { return b.dims[len(b.dims)-1] }

// outer is the number of runs.
func (b *bcast) outer() int {
	if b.total == 0 {
		return 0
	}
	return b.total / b.inner()
}

// runs calls fn for the runs with index in [lo, hi): o is the output offset,
// off[k] the offset of input k, inc[k] its step along the run (0 or 1), and n
// the run length.
func (b *bcast) runs(lo, hi int, fn func(o int, off, inc []int, n int)) {
	nd := len(b.dims)
	nIn := len(b.strides)
	n := b.dims[nd-1]
	inc := make([]int, nIn)
	for k := range inc {
		inc[k] = b.strides[k][nd-1]
	}
	idx := make([]int, nd-1)
	off := make([]int, nIn)
	// Decompose lo into a multi-index over the outer dims.
	r := lo
	for d := nd - 2; d >= 0; d-- {
		idx[d] = r % b.dims[d]
		r /= b.dims[d]
	}
	for k := range off {
		for d := 0; d < nd-1; d++ {
			off[k] += idx[d] * b.strides[k][d]
		}
	}
	for run := lo; run < hi; run++ {
		fn(run*n, off, inc, n)
		for d := nd - 2; d >= 0; d-- {
			idx[d]++
			for k := range off {
				off[k] += b.strides[k][d]
			}
			if idx[d] < b.dims[d] {
				break
			}
			for k := range off {
				off[k] -= b.strides[k][d] * b.dims[d]
			}
			idx[d] = 0
		}
	}
}

// parallelRuns splits the runs over threads when there is enough work.
func (b *bcast) parallelRuns(threads int, fn func(o int, off, inc []int, n int)) {
	outer := b.outer()
	if outer == 0 {
		return
	}
	grain := max(1, (1<<15)/max(1, b.inner()))
	parallelFor(threads, outer, grain, func(lo, hi int) { b.runs(lo, hi, fn) })
}
