// Package activation holds the parts of re-basin that run the models on
// data: activation matching (Git Re-Basin's second method), resetting
// BatchNorm statistics, and REPAIR (Jordan et al. 2022), which corrects a
// merged model's per-channel statistics.
package activation

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/permute"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// Options controls the passes over data of activation matching, BatchNorm
// resets and REPAIR.
type Options struct {
	Batch    int                   // samples per forward pass (default 256)
	Progress func(done, total int) // called after each batch, if set
	// Context, if set, stops the passes with its error when cancelled.
	Context context.Context
}

func (o Options) batch() int {
	if o.Batch <= 0 {
		return 256
	}
	return o.Batch
}

// channelStats accumulates, for one activation site seen in two models, the
// per-channel sums and the cross-product sums Σ a_i·b_j, in float64.
type channelStats struct {
	n          float64
	sumA, sumB []float64
	sqA, sqB   []float64
	cross      []float64 // c×c, row i = channel i of A
	channels   int
	value      string // in A
	valueB     string // the same value in B (whose names may differ)
	axis       int
	// repeat, when above 1, says that the channels are the group's units
	// repeated (graph.ActivationSite.Repeat), perBlock units per block.
	repeat, perBlock int
}

func newChannelStats(value string, axis, c int) *channelStats {
	return &channelStats{value: value, axis: axis, channels: c,
		sumA: make([]float64, c), sumB: make([]float64, c), sqA: make([]float64, c), sqB: make([]float64, c),
		cross: make([]float64, c*c)}
}

// add accumulates one batch of the site's values: xa, xb laid out as
// outer × channels × inner.
func (s *channelStats) add(shape []int, xa, xb []float32) error {
	if s.axis >= len(shape) || shape[s.axis] != s.channels {
		return fmt.Errorf("activation %s: shape %v has no axis %d of %d channels", s.value, shape, s.axis, s.channels)
	}
	outer, inner := 1, 1
	for i, d := range shape {
		if i < s.axis {
			outer *= d
		} else if i > s.axis {
			inner *= d
		}
	}
	c := s.channels
	if inner == 1 {
		// rows × channels: Σ over rows of a_rowᵀ b_row.
		simd.GemmF64Acc(true, false, c, c, outer, xa, c, xb, c, s.cross, c)
	} else {
		for o := 0; o < outer; o++ {
			off := o * c * inner
			simd.GemmF64Acc(false, true, c, c, inner, xa[off:off+c*inner], inner, xb[off:off+c*inner], inner, s.cross, c)
		}
	}
	for o := 0; o < outer; o++ {
		for ch := 0; ch < c; ch++ {
			base := (o*c + ch) * inner
			for k := 0; k < inner; k++ {
				va, vb := float64(xa[base+k]), float64(xb[base+k])
				s.sumA[ch] += va
				s.sumB[ch] += vb
				s.sqA[ch] += va * va
				s.sqB[ch] += vb * vb
			}
		}
	}
	s.n += float64(outer * inner)
	return nil
}

// unitCorrelation returns correlation() over the n units of the group: for
// repeated channels, the mean over the copies of the correlation of A's
// copy of unit u with B's same copy of unit v (the copies move together).
func (s *channelStats) unitCorrelation(n int) []float64 {
	corr := s.correlation()
	if s.repeat <= 1 {
		return corr
	}
	out := make([]float64, n*n)
	for u := range n {
		for v := range n {
			sum := 0.0
			for j := range s.repeat {
				sum += corr[sitelayout.UnitIndex(u, j, s.perBlock, s.repeat, 1, 0)*s.channels+sitelayout.UnitIndex(v, j, s.perBlock, s.repeat, 1, 0)]
			}
			out[u*n+v] = sum / float64(s.repeat)
		}
	}
	return out
}

// correlation returns the c×c matrix of Pearson correlations between A's
// channel i and B's channel j. Correlations, not raw products, so that every
// site counts alike however its activations are scaled.
func (s *channelStats) correlation() []float64 {
	c := s.channels
	out := make([]float64, c*c)
	if s.n == 0 {
		return out
	}
	meanA, meanB := make([]float64, c), make([]float64, c)
	stdA, stdB := make([]float64, c), make([]float64, c)
	for i := 0; i < c; i++ {
		meanA[i], meanB[i] = s.sumA[i]/s.n, s.sumB[i]/s.n
		stdA[i] = math.Sqrt(math.Max(s.sqA[i]/s.n-meanA[i]*meanA[i], 0))
		stdB[i] = math.Sqrt(math.Max(s.sqB[i]/s.n-meanB[i]*meanB[i], 0))
	}
	const eps = 1e-8
	for i := 0; i < c; i++ {
		for j := 0; j < c; j++ {
			cov := s.cross[i*c+j]/s.n - meanA[i]*meanB[j]
			out[i*c+j] = cov / (stdA[i]*stdB[j] + eps)
		}
	}
	return out
}

// Match is the paper's activation matching: both models run on
// the data, and each group's permutation is the assignment that maximises
// the summed correlation between A's and B's activations over every
// activation site the group permutes (a residual stream pools all its tied
// sites). Each group is solved once and independently.
func Match(a, b *onnx.Model, ga *graph.Analysis, ds *eval.Dataset, opts Options) (permute.Perms, error) {
	if err := sitelayout.CheckFit(ga, a, b); err != nil {
		return nil, err
	}
	sa, err := infer.NewSession(a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, err)
	}
	sb, err := infer.NewSession(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name, err)
	}
	if len(sa.Inputs()) != 1 {
		return nil, fmt.Errorf("%s: activation matching needs a model with one input", a.Name)
	}
	input := sa.Inputs()[0].Name
	// The analysis in a's form, and b's names for a's values.
	onA, err := ga.For(a)
	if err != nil {
		return nil, err
	}
	c, err := graph.Correspond(a, b)
	if err != nil {
		return nil, err
	}
	stats := make([][]*channelStats, len(ga.Groups))
	var names, namesB []string
	for g, grp := range onA.Groups {
		for _, s := range grp.Activations {
			if s.Block > 1 || s.Offset != 0 {
				continue // the same channels seen before a Flatten or Concat
			}
			channels := grp.Size * max(s.Repeat, 1)
			if d, ok := ga.Shape(s.Value); ok && s.Axis < len(d) && d[s.Axis] >= 0 && int(d[s.Axis]) != channels {
				continue // a part of a wider axis (a packed projection): seen again after its Slice
			}
			cs := newChannelStats(s.Value, s.Axis, channels)
			cs.repeat, cs.perBlock = max(s.Repeat, 1), grp.Size/max(grp.Blocks, 1)
			var ok bool
			if cs.valueB, ok = c.Value(s.Value); !ok {
				continue // inside an op b computes as one node
			}
			stats[g] = append(stats[g], cs)
			names = append(names, s.Value)
			namesB = append(namesB, cs.valueB)
		}
		if len(stats[g]) == 0 {
			return nil, fmt.Errorf("group %d has no activation to match on", g)
		}
	}
	batch := opts.batch()
	for from := 0; from < ds.N(); from += batch {
		if err := sitelayout.ContextErr(opts.Context); err != nil {
			return nil, err
		}
		to := min(from+batch, ds.N())
		x := map[string]*infer.Tensor{input: ds.Batch(from, to)}
		oa, err := sa.Run(x, infer.Capture(names...))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		ob, err := sb.Run(x, infer.Capture(namesB...))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name, err)
		}
		for _, gs := range stats {
			for _, s := range gs {
				ta, tb := oa[s.value], ob[s.valueB]
				if ta == nil || tb == nil || ta.DType != infer.Float32 || tb.DType != infer.Float32 {
					return nil, fmt.Errorf("activation %s was not computed", s.value)
				}
				if !slices.Equal(ta.Shape, tb.Shape) {
					return nil, fmt.Errorf("activation %s is %v in %s but %v in %s", s.value, ta.Shape, a.Name, tb.Shape, b.Name)
				}
				if err := s.add(ta.Shape, ta.F, tb.F); err != nil {
					return nil, err
				}
			}
		}
		if opts.Progress != nil {
			opts.Progress(to, ds.N())
		}
	}
	var solver lap.Solver
	perms := make(permute.Perms, len(ga.Groups))
	sets := sitelayout.SetsOf(ga)
	costs := make([][]float64, len(ga.Groups))
	for g, gs := range stats {
		n := ga.Groups[g].Size
		cost := make([]float64, n*n)
		for _, s := range gs {
			for i, v := range s.unitCorrelation(n) {
				cost[i] += v
			}
		}
		if sets[g] >= 0 {
			costs[g] = cost // solved with its block set below
			continue
		}
		p, _, err := solver.Solve(n, cost)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", g, err)
		}
		perms[g] = p
	}
	// Block-structured groups: per pair of heads the within-head
	// assignments, then the head assignment (see sitelayout.BlockSolve).
	for _, set := range ga.BlockSets {
		cs := make([][]float64, len(set))
		for k, g := range set {
			cs[k] = costs[g]
		}
		ps, err := sitelayout.SolveSet(&solver, ga.Groups, set, cs)
		if err != nil {
			return nil, fmt.Errorf("groups %v: %w", set, err)
		}
		for k, g := range set {
			perms[g] = ps[k]
		}
	}
	return perms, nil
}
