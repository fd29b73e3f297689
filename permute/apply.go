// Package permute holds permutations of a model's hidden units (one per
// permutation group that package graph infers) and applies them to ONNX
// models, moving every weight that reads a permuted axis so that the model
// computes the same function. It also checks that two models share an
// architecture, the precondition of aligning and merging them.
package permute

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// Perms holds one permutation per group of an analysis, in group order.
// perms[g][i] = j means unit j of the input becomes unit i of the output.
type Perms [][]int

// Identity returns the identity permutation of every group.
func Identity(a *graph.Analysis) Perms {
	p := make(Perms, len(a.Groups))
	for g, grp := range a.Groups {
		p[g] = sitelayout.IdentityPerm(grp.Size)
	}
	return p
}

// Random returns a uniformly random permutation of every group, drawn from
// seed. A block-structured group gets a random block permutation, one per
// block set (drawn at its first group), and random permutations within
// each block.
func Random(a *graph.Analysis, seed uint64) Perms {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	p := make(Perms, len(a.Groups))
	sets := sitelayout.SetsOf(a)
	sigmas := make([][]int, len(a.BlockSets))
	for g, grp := range a.Groups {
		k := sets[g]
		if k < 0 || grp.Blocks < 2 {
			p[g] = r.Perm(grp.Size)
			continue
		}
		if sigmas[k] == nil {
			sigmas[k] = r.Perm(grp.Blocks)
		}
		d := grp.Size / grp.Blocks
		tau := sitelayout.IdentityBlocks(grp.Blocks, d)
		for b := range tau {
			switch {
			case grp.FixedWithin:
			case grp.SharedWithin && b > 0:
				tau[b] = tau[0]
			default:
				tau[b] = r.Perm(d)
			}
		}
		p[g] = sitelayout.BlockPerm(sigmas[k], tau, d)
	}
	return p
}

// Check verifies that p has one valid permutation per group of a.
func (p Perms) Check(a *graph.Analysis) error {
	if len(p) != len(a.Groups) {
		return fmt.Errorf("got %d permutations for %d groups", len(p), len(a.Groups))
	}
	for g, grp := range a.Groups {
		if len(p[g]) != grp.Size {
			return fmt.Errorf("group %d: permutation has %d entries, group has %d units", g, len(p[g]), grp.Size)
		}
		seen := make([]bool, grp.Size)
		for _, j := range p[g] {
			if j < 0 || j >= grp.Size || seen[j] {
				return fmt.Errorf("group %d: not a permutation of 0..%d", g, grp.Size-1)
			}
			seen[j] = true
		}
	}
	return p.checkBlocks(a)
}

// axisMove is one permuted axis of a weight: new index i along Axis takes old index Index[i].
type axisMove struct {
	Axis  int
	Index []int
}

// Apply permutes every weight of m that a group touches, in place. a must be
// the analysis of m or of a model of the same architecture in any form (see
// SameArchitecture and graph.Analysis.For): each group member is found by
// the node input that reads it, not by name, so weights may be named,
// shared or stored differently. Tensors keep their element type: a weight
// stored in fp16 behind a Cast is permuted in fp16. A tensor whose users
// need different permutations (an initializer shared between layers) is
// copied once per distinct placement of groups, so no tensor is ever
// permuted twice; a copy is read directly by its users, in the element
// type they read (after the Casts they read the original through).
func Apply(m *onnx.Model, a *graph.Analysis, p Perms) error {
	if err := p.Check(a); err != nil {
		return err
	}
	a, err := a.For(m)
	if err != nil {
		return err
	}
	src := graph.NewSources(m)
	weights := src.Weights()
	g := m.Proto.GetGraph()
	// Sites of each use, per axis.
	type siteOnAxis struct {
		group, block, offset int
		within               bool // one block's units (graph.WeightSite.Within)
		repeat, perBlock     int  // every block perBlock units, repeat times (graph.WeightSite.Repeat)
		perm                 []int
	}
	byUse := map[sitelayout.NodeInput]map[int][]siteOnAxis{}
	tensorOf := map[sitelayout.NodeInput]string{}
	for gi, grp := range a.Groups {
		for _, s := range grp.Weights {
			u := sitelayout.NodeInput{Node: s.Node, Input: s.Input}
			if byUse[u] == nil {
				byUse[u] = map[int][]siteOnAxis{}
			}
			perBlock := grp.Size / max(grp.Blocks, 1)
			if s.Repeat > 1 && (s.Within || perBlock == 0 || grp.Size%perBlock != 0) {
				return fmt.Errorf("group member %q: group %d's blocks cannot be repeated", s.Tensor, gi)
			}
			byUse[u][s.Axis] = append(byUse[u][s.Axis], siteOnAxis{gi, s.Block, s.Offset, s.Within, max(s.Repeat, 1), perBlock, p[gi]})
			if s.Node < 0 || s.Node >= len(g.GetNode()) || s.Input < 0 || s.Input >= len(g.Node[s.Node].Input) {
				return fmt.Errorf("group member %q: node %d input %d is not in the model", s.Tensor, s.Node, s.Input)
			}
			tensorOf[u] = src.Name(g.Node[s.Node].Input[s.Input])
			if tensorOf[u] == "" {
				return fmt.Errorf("group member %q: node %d input %d does not read a weight", s.Tensor, s.Node, s.Input)
			}
		}
	}
	// Turn each use's sites into per-axis index maps over the full tensor.
	moves := map[sitelayout.NodeInput][]axisMove{}
	shapeKey := map[sitelayout.NodeInput]string{} // which groups sit where: decides sharing
	for u, axes := range byUse {
		t := weights[tensorOf[u]]
		if t == nil {
			return fmt.Errorf("group member %q is not a weight of the model", tensorOf[u])
		}
		for axis := 0; axis < len(t.Dims); axis++ {
			sites, ok := axes[axis]
			if !ok {
				continue
			}
			for _, s := range sites {
				shapeKey[u] += fmt.Sprintf("%d:%d/%d/%d/%v/%d;", axis, s.group, s.block, s.offset, s.within, s.repeat)
			}
			idx := sitelayout.IdentityPerm(int(t.Dims[axis]))
			covered := make([]bool, len(idx))
			for _, s := range sites {
				block := max(s.block, 1)
				perm := s.perm
				if s.within {
					// The within-block permutation, which every block
					// shares (Check made sure): block 0's.
					d := len(idx)
					if d == 0 || len(perm)%d != 0 {
						return fmt.Errorf("weight %q axis %d: %d entries hold no block of group %d (%d units)", t.GetName(), axis, d, s.group, len(perm))
					}
					perm = make([]int, d)
					for i := range perm {
						perm[i] = s.perm[i] % d
					}
				}
				d := s.perBlock
				if s.within {
					d = len(perm)
				}
				for c, from := range perm {
					for r := 0; r < s.repeat; r++ {
						to, fromIdx := sitelayout.UnitIndex(c, r, d, s.repeat, block, s.offset), sitelayout.UnitIndex(from, r, d, s.repeat, block, s.offset)
						for j := 0; j < block; j++ {
							i := to + j
							if i < 0 || i >= len(idx) || covered[i] {
								return fmt.Errorf("weight %q axis %d: group sites overlap or exceed the axis (%d)", t.GetName(), axis, t.Dims[axis])
							}
							covered[i] = true
							idx[i] = fromIdx + j
						}
					}
				}
			}
			moves[u] = append(moves[u], axisMove{axis, idx})
		}
		if len(axes) > 0 && len(moves[u]) == 0 {
			return fmt.Errorf("weight %q: permuted axis out of range", t.GetName())
		}
	}

	// Every reader of every weight, looking through forwarders.
	type reader struct {
		u   sitelayout.NodeInput
		key string // canonical form of the moves, "" for none
	}
	readers := map[string][]reader{}
	var tensorOrder []string
	for ni, n := range g.GetNode() {
		if src.Forwarder(ni) {
			continue // a forwarder, not a reader
		}
		for ii, in := range n.Input {
			tn := src.Name(in)
			if tn == "" {
				continue
			}
			u := sitelayout.NodeInput{Node: ni, Input: ii}
			if readers[tn] == nil {
				tensorOrder = append(tensorOrder, tn)
			}
			readers[tn] = append(readers[tn], reader{u, shapeKey[u]})
		}
	}
	for _, o := range g.GetOutput() {
		if tn := src.Name(o.GetName()); tn != "" {
			if readers[tn] == nil {
				tensorOrder = append(tensorOrder, tn)
			}
			readers[tn] = append(readers[tn], reader{sitelayout.NodeInput{Node: -1, Input: -1}, ""})
		}
	}

	// Tensors that every reader reads the same way are permuted in place,
	// on every core: a model of many small weights (DenseNet-121's 600)
	// otherwise left all but one idle.
	var inPlace []tensorMoves
	names := sitelayout.NamesOf(m)
	for _, tn := range tensorOrder {
		rs := readers[tn]
		t := weights[tn]
		distinct := map[string]bool{}
		for _, r := range rs {
			distinct[r.key] = true
		}
		if len(distinct) == 1 {
			if rs[0].key != "" {
				inPlace = append(inPlace, tensorMoves{t, moves[rs[0].u]})
			}
			continue
		}
		// Users disagree: the unpermuted readers keep the original, each
		// distinct placement of groups gets its own copy. Copies depend on
		// the groups, not on the permutation values, so every model of one
		// architecture gets the same tensors (even under identity
		// permutations), and aligned models can be averaged tensor by tensor.
		copies := map[string]string{}
		for _, r := range rs {
			if r.key == "" {
				continue
			}
			in := g.Node[r.u.Node].Input[r.u.Input]
			dt := src.ElemType(in)
			key := r.key + dt.String()
			name, ok := copies[key]
			if !ok {
				name = names.Unique(tn + "_rebasin" + strconv.Itoa(len(copies)+1))
				c, err := sitelayout.CopyAs(m, t, name, dt)
				if err != nil {
					return err
				}
				weights[name] = c
				if err := permuteTensor(m, c, moves[r.u]); err != nil {
					return err
				}
				copies[key] = name
			}
			g.Node[r.u.Node].Input[r.u.Input] = name
		}
	}
	return permuteTensors(m, inPlace)
}

// tensorMoves is a tensor and the moves of its axes.
type tensorMoves struct {
	t  *onnxpb.TensorProto
	ms []axisMove
}

// permuteTensors is permuteTensor on each of ts. The moves are computed
// on every core, simd.Parallel handing out the tensors one by one; storing
// them back (SetTensorBytes, which may update the model's map of external
// data) is done in order on the caller, which also reports the first error
// in order.
func permuteTensors(m *onnx.Model, ts []tensorMoves) error {
	raws := make([][]byte, len(ts))
	for k, tm := range ts {
		raw, err := m.TensorBytes(tm.t)
		if err != nil {
			return err
		}
		raws[k] = raw
	}
	errs := make([]error, len(ts))
	simd.Parallel(runtime.GOMAXPROCS(0), len(ts), func(k int) {
		errs[k] = moveElements(ts[k].t, raws[k], ts[k].ms)
	})
	for k, tm := range ts {
		if errs[k] != nil {
			return errs[k]
		}
		if err := m.SetTensorBytes(tm.t, raws[k]); err != nil {
			return err
		}
	}
	return nil
}

// permuteTensor moves whole elements of t (any fixed-size type, bit-exactly)
// along each axis of ms, in place: each row (along axis 0) has its columns
// gathered through a row buffer, then the rows move along the cycles of
// their permutation. A new buffer for the result, as large as the tensor,
// was all fresh memory, which cost more than the moves.
func permuteTensor(m *onnx.Model, t *onnxpb.TensorProto, ms []axisMove) error {
	raw, err := m.TensorBytes(t)
	if err != nil {
		return err
	}
	if err := moveElements(t, raw, ms); err != nil {
		return err
	}
	return m.SetTensorBytes(t, raw)
}

// moveElements does permuteTensor's moves on raw, the bytes of t.
func moveElements(t *onnxpb.TensorProto, raw []byte, ms []axisMove) error {
	es := onnx.ElemSize(onnx.DataType(t))
	dims := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		dims[i] = int(d)
	}
	maps := make([][]int, len(dims))
	for _, mv := range ms {
		if mv.Axis < 0 || mv.Axis >= len(dims) || len(mv.Index) != dims[mv.Axis] {
			return fmt.Errorf("tensor %q axis %d: index map does not fit dims %v", t.GetName(), mv.Axis, t.Dims)
		}
		maps[mv.Axis] = mv.Index
	}
	if len(dims) == 0 || len(raw) == 0 {
		return nil
	}
	// Rows along axis 0, columns over the other axes (see layout.go).
	rows := dims[0]
	colOff := sitelayout.ColOffsets(dims, 0, 1, maps, nil)
	rowBytes := len(colOff) * es
	if !sitelayout.IsIdentity(colOff) {
		runs := sitelayout.RunsOf(colOff, nil)
		sitelayout.InParallel(rows, min(runtime.GOMAXPROCS(0), rows, len(raw)>>20+1), func(r0, r1 int) {
			tmp := make([]byte, rowBytes)
			for r := r0; r < r1; r++ {
				row := raw[r*rowBytes : (r+1)*rowBytes]
				copy(tmp, row)
				for _, q := range runs {
					copy(row[q.Col*es:(q.Col+q.Len)*es], tmp[q.Off*es:(q.Off+q.Len)*es])
				}
			}
		})
	}
	if maps[0] != nil {
		// Row r takes row maps[0][r]: follow each cycle, carrying its
		// first row.
		tmp := make([]byte, rowBytes)
		done := make([]bool, rows)
		row := func(r int) []byte { return raw[r*rowBytes : (r+1)*rowBytes] }
		for start := range rows {
			if done[start] || maps[0][start] == start {
				continue
			}
			copy(tmp, row(start))
			r := start
			for {
				done[r] = true
				from := maps[0][r]
				if from == start {
					copy(row(r), tmp)
					break
				}
				copy(row(r), row(from))
				r = from
			}
		}
	}
	return nil
}
