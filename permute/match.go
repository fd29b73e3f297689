package permute

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// MatchOptions controls weight matching.
type MatchOptions struct {
	// Seed draws the order in which each sweep visits the groups.
	Seed uint64
	// MaxIter bounds the number of sweeps (default 100).
	MaxIter int
	// Init is the starting permutation. By default matching starts from
	// whichever scores higher of the identity and the signature start (see
	// WeightMatch).
	Init Perms
	// IdentityStart, when Init is nil, starts from the identity without
	// trying the signature start.
	IdentityStart bool
	// Progress, if set, is called after every sweep.
	Progress func(s Sweep)
}

// Sweep reports one pass of coordinate descent over all groups.
type Sweep struct {
	N         int           // 1-based sweep number
	Objective float64       // Σ⟨W_A, π(W_B)⟩ after the sweep
	Changed   int           // groups whose permutation changed
	Elapsed   time.Duration // since matching started
}

// MatchResult is the outcome of weight matching.
type MatchResult struct {
	Perms           Perms
	Sweeps          []Sweep
	ObjectiveBefore float64 // at the initial permutation
	ObjectiveAfter  float64
}

// matchSite is one group site of one weight use, with its data in matrix form.
type matchSite struct {
	use   int // index into matcher.uses
	group int
	axis  int
	block int
	off   int
	rows  int       // group size
	cols  int       // everything else
	aMat  []float32 // A's rows for this site, rows × cols
	cost  []float64 // cached contribution to the group's cost, rows × rows
	bMat  []float32 // B's rows for this site with the other groups applied, as cost saw them
	stamp []uint64  // versions of the uses' other groups when cost was computed
}

// matchUse is one node input that reads a permuted weight.
type matchUse struct {
	tensor string
	dims   []int
	a, b   []float32
	sites  []int // indices into matcher.sites
}

type matcher struct {
	groups  []graph.Group
	uses    []matchUse
	sites   []matchSite
	byGroup [][]int // group → site indices
	usesOf  [][]int // group → indices of the uses it touches
	// repeated[g]: some weight use has g on more than one site.
	repeated []bool
	version  []uint64
}

// WeightMatch finds permutations of b's groups that maximise Σ⟨W_A, π(W_B)⟩
// over all permuted weights, by the coordinate descent of Ainsworth et al.
// (PermutationCoordinateDescent): each step solves one group's linear
// assignment problem exactly with the other groups held fixed, so the
// objective never decreases. ga must be the analysis of a; a and b must
// have the same architecture (see SameArchitecture).
//
// Coordinate descent from the identity can stall in a poor local optimum
// when a group's cost is dominated by neighbours that are still unaligned
// (seen on MobileNetV2, whose depthwise layers give each unit few weights
// of its own). So unless told otherwise it also builds a signature start,
// pairing each group's units by a statistic of their weights that no
// permutation of the other groups can change, and descent starts from
// whichever of the two scores higher.
func WeightMatch(a, b *onnx.Model, ga *graph.Analysis, opts MatchOptions) (*MatchResult, error) {
	start := time.Now()
	mt, err := newMatcher(a, b, ga)
	if err != nil {
		return nil, err
	}
	solver := newAssigner()
	var perms Perms
	switch {
	case opts.Init != nil:
		perms = clonePerms(opts.Init)
		if err := perms.Check(ga); err != nil {
			return nil, fmt.Errorf("initial permutation: %w", err)
		}
	case opts.IdentityStart:
		perms = Identity(ga)
	default:
		perms = Identity(ga)
		sig, err := mt.signatureStart(solver)
		if err != nil {
			return nil, err
		}
		if mt.objective(sig) > mt.objective(perms) {
			perms = sig
		}
	}
	maxIter := opts.MaxIter
	if maxIter <= 0 {
		maxIter = 100
	}
	res := &MatchResult{ObjectiveBefore: mt.objective(Identity(ga))}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x2545f4914f6cdd1d))
	objective := mt.objective(perms)
	for sweep := 1; sweep <= maxIter; sweep++ {
		changed := 0
		for _, g := range rng.Perm(len(mt.groups)) {
			n := mt.groups[g].Size
			cost := mt.groupCost(g, perms)
			old := 0.0
			for i, j := range perms[g] {
				old += cost[i*n+j]
			}
			p, total, err := solver.solve(g, n, cost, perms[g])
			if err != nil {
				return nil, fmt.Errorf("group %d: %w", g, err)
			}
			if total <= old+1e-12*math.Abs(old) || equalPerm(p, perms[g]) {
				continue
			}
			// The cost matrix carries float32 rounding, so check the
			// move on the exact objective of the weights g touches. Only
			// a strict improvement moves: ties keep the current
			// permutation, so the objective never decreases and the
			// descent terminates.
			if gain := mt.exactGain(g, perms, p); gain > 1e-12*math.Abs(objective) {
				perms[g] = p
				mt.version[g]++
				changed++
				objective += gain
			}
		}
		s := Sweep{N: sweep, Objective: objective, Changed: changed, Elapsed: time.Since(start)}
		res.Sweeps = append(res.Sweeps, s)
		if opts.Progress != nil {
			opts.Progress(s)
		}
		if changed == 0 {
			break
		}
	}
	res.Perms = perms
	res.ObjectiveAfter = mt.objective(perms)
	return res, nil
}

func clonePerms(p Perms) Perms {
	c := make(Perms, len(p))
	for i := range p {
		c[i] = append([]int(nil), p[i]...)
	}
	return c
}

func equalPerm(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newMatcher(a, b *onnx.Model, ga *graph.Analysis) (*matcher, error) {
	mt := &matcher{groups: ga.Groups, byGroup: make([][]int, len(ga.Groups)), version: make([]uint64, len(ga.Groups))}
	wa, wb := a.Weights(), b.Weights()
	useIndex := map[[2]int]int{}
	for gi, grp := range ga.Groups {
		for _, s := range grp.Weights {
			key := [2]int{s.Node, s.Input}
			ui, ok := useIndex[key]
			if !ok {
				ta, tb := useTensor(a, wa, s), useTensor(b, wb, s)
				if ta == nil || tb == nil {
					return nil, fmt.Errorf("weight %q missing", s.Tensor)
				}
				if !onnx.IsFloat(onnx.DataType(ta)) {
					return nil, fmt.Errorf("weight %q: type %v cannot be matched", s.Tensor, onnx.DataType(ta))
				}
				fa, err := a.Float32s(ta)
				if err != nil {
					return nil, err
				}
				fb, err := b.Float32s(tb)
				if err != nil {
					return nil, err
				}
				dims := make([]int, len(ta.Dims))
				for i, d := range ta.Dims {
					dims[i] = int(d)
				}
				ui = len(mt.uses)
				useIndex[key] = ui
				mt.uses = append(mt.uses, matchUse{tensor: s.Tensor, dims: dims, a: fa, b: fb})
			}
			u := &mt.uses[ui]
			if s.Axis < 0 || s.Axis >= len(u.dims) {
				return nil, fmt.Errorf("weight %q: axis %d out of range", s.Tensor, s.Axis)
			}
			block := max(s.Block, 1)
			if s.Offset+grp.Size*block > u.dims[s.Axis] {
				return nil, fmt.Errorf("weight %q axis %d: group %d does not fit", s.Tensor, s.Axis, gi)
			}
			si := len(mt.sites)
			mt.sites = append(mt.sites, matchSite{use: ui, group: gi, axis: s.Axis, block: block, off: s.Offset, rows: grp.Size})
			u.sites = append(u.sites, si)
			mt.byGroup[gi] = append(mt.byGroup[gi], si)
		}
	}
	mt.usesOf = make([][]int, len(ga.Groups))
	mt.repeated = make([]bool, len(ga.Groups))
	for g, sites := range mt.byGroup {
		for _, si := range sites {
			u := mt.sites[si].use
			if slices.Contains(mt.usesOf[g], u) {
				mt.repeated[g] = true
			} else {
				mt.usesOf[g] = append(mt.usesOf[g], u)
			}
		}
	}
	for i := range mt.sites {
		s := &mt.sites[i]
		s.aMat, s.cols = gatherRows(mt.uses[s.use].a, mt.uses[s.use].dims, s.axis, s.block, s.off, s.rows, nil)
	}
	if len(mt.sites) == 0 && len(ga.Groups) > 0 {
		return nil, errors.New("groups have no weights to match")
	}
	return mt, nil
}

// gatherRows lays out the part of an axis that a group occupies as a
// rows × cols matrix: row c holds, for every index of the other axes, the
// block of channel c. The result may share data's memory.
func gatherRows(data []float32, dims []int, axis, block, off, rows int, dst []float32) ([]float32, int) {
	outer, inner := 1, 1
	for i, d := range dims {
		if i < axis {
			outer *= d
		} else if i > axis {
			inner *= d
		}
	}
	cols := outer * block * inner
	if outer == 1 && off == 0 {
		// The group's rows are already contiguous: no copy. Callers
		// only read the result.
		return data[:rows*cols], cols
	}
	if cap(dst) < rows*cols {
		dst = make([]float32, rows*cols)
	}
	dst = dst[:rows*cols]
	n := dims[axis]
	chunk := block * inner
	for c := 0; c < rows; c++ {
		row := dst[c*cols : (c+1)*cols]
		k := 0
		for o := 0; o < outer; o++ {
			src := data[(o*n+off+c*block)*inner:][:chunk]
			if chunk < 32 {
				// A conv kernel's 9 values: a call to copy costs more.
				for j, v := range src {
					row[k+j] = v
				}
			} else {
				copy(row[k:k+chunk], src)
			}
			k += chunk
		}
	}
	return dst, cols
}

// permutedB returns use u's B weight with every group site except skip
// permuted by the current permutations.
func (mt *matcher) permutedB(u int, skip int, perms Perms) []float32 {
	use := &mt.uses[u]
	out := use.b
	copied := false
	for _, si := range use.sites {
		if si == skip {
			continue
		}
		s := &mt.sites[si]
		if isIdentity(perms[s.group]) {
			continue
		}
		if !copied {
			out = append([]float32(nil), use.b...)
			copied = true
		}
		permuteAxisF32(out, use.dims, s.axis, s.block, s.off, perms[s.group])
	}
	return out
}

func isIdentity(p []int) bool {
	for i, j := range p {
		if i != j {
			return false
		}
	}
	return true
}

// permuteAxisF32 applies perm to the group's part of one axis, in place.
func permuteAxisF32(data []float32, dims []int, axis, block, off int, perm []int) {
	outer, inner := 1, 1
	for i, d := range dims {
		if i < axis {
			outer *= d
		} else if i > axis {
			inner *= d
		}
	}
	n := dims[axis]
	seg := len(perm) * block * inner
	tmp := make([]float32, seg)
	chunk := block * inner
	for o := 0; o < outer; o++ {
		base := (o*n + off) * inner
		copy(tmp, data[base:base+seg])
		for i, from := range perm {
			dst, src := data[base+i*chunk:][:chunk], tmp[from*chunk:][:chunk]
			if chunk < 32 {
				for j, v := range src {
					dst[j] = v
				}
			} else {
				copy(dst, src)
			}
		}
	}
}

// groupCost returns the n×n matrix whose entry (i, j) is the gain of
// mapping B's unit j to A's unit i, summed over all the group's sites with
// every other permutation applied to B. Site contributions are cached and
// recomputed only when another group on the same weight has moved.
func (mt *matcher) groupCost(g int, perms Perms) []float64 {
	n := mt.groups[g].Size
	total := make([]float64, n*n)
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		use := &mt.uses[s.use]
		stamp := make([]uint64, 0, len(use.sites))
		for _, o := range use.sites {
			if o != si {
				stamp = append(stamp, mt.version[mt.sites[o].group])
			}
		}
		if s.cost == nil || !equalStamp(stamp, s.stamp) {
			bp := mt.permutedB(s.use, si, perms)
			bMat, _ := gatherRows(bp, use.dims, s.axis, s.block, s.off, s.rows, nil)
			if s.cost == nil {
				s.cost = make([]float64, n*n)
			} else {
				clear(s.cost)
			}
			gemmABTFast(n, n, s.cols, s.aMat, bMat, s.cost)
			s.bMat = bMat
			s.stamp = stamp
		}
		for i, v := range s.cost {
			total[i] += v
		}
	}
	return total
}

func equalStamp(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// signatureStart matches every group's units on permutation-invariant
// signatures: within each site, a unit's weights sorted by value, which no
// permutation of the other groups can change. Groups of up to
// maxSignatureAssign units are solved as an assignment on Σ⟨sort(a_i),
// sort(b_j)⟩, which bounds what units i and j can contribute; larger ones
// are paired by the rank of their energy Σ w² (summed in sorted order, so
// bit-identical for a permuted copy), because those near-rank-one cost
// matrices made the solver take 40 s at n = 4096. Either way a permuted
// copy of A is matched exactly at once.
func (mt *matcher) signatureStart(solver *assigner) (Perms, error) {
	perms := make(Perms, len(mt.groups))
	for g, grp := range mt.groups {
		n := grp.Size
		assign := n <= maxSignatureAssign
		var cost []float64
		keyA, keyB := make([]float64, n), make([]float64, n)
		if assign {
			cost = make([]float64, n*n)
		}
		for _, si := range mt.byGroup[g] {
			s := &mt.sites[si]
			use := &mt.uses[s.use]
			sa := sortRows(append([]float32(nil), s.aMat...), s.cols)
			sb, _ := gatherRows(use.b, use.dims, s.axis, s.block, s.off, s.rows, nil)
			sb = sortRows(append([]float32(nil), sb...), s.cols)
			if assign {
				// A start needs no float64 precision: the descent
				// checks every move exactly.
				gemmABTFast(n, n, s.cols, sa, sb, cost)
				continue
			}
			for i := 0; i < n; i++ {
				keyA[i] += energy(sa[i*s.cols : (i+1)*s.cols])
				keyB[i] += energy(sb[i*s.cols : (i+1)*s.cols])
			}
		}
		if assign {
			p, _, err := solver.solve(-1-g, n, cost, nil)
			if err != nil {
				return nil, fmt.Errorf("group %d: %w", g, err)
			}
			perms[g] = p
			continue
		}
		ra, rb := rankOrder(keyA), rankOrder(keyB)
		p := make([]int, n)
		for r := range ra {
			p[ra[r]] = rb[r]
		}
		perms[g] = p
	}
	return perms, nil
}

// maxSignatureAssign is the largest group whose signature start is solved
// as an assignment problem (see signatureStart). A variable so tests can
// exercise the rank pairing on small models.
var maxSignatureAssign = 2048

// energy is Σ x² in float64, in the order given.
func energy(x []float32) float64 {
	e := 0.0
	for _, v := range x {
		e += float64(v) * float64(v)
	}
	return e
}

// rankOrder returns the indices of keys in increasing key order (ties by index).
func rankOrder(keys []float64) []int {
	idx := identityPerm(len(keys))
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	return idx
}

func sortRows(m []float32, cols int) []float32 {
	if cols <= 0 {
		return m
	}
	rows := len(m) / cols
	workers := min(runtime.GOMAXPROCS(0), rows)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			scratch := make([]uint32, 2*cols)
			for r := w; r < rows; r += workers {
				radixSort(m[r*cols:(r+1)*cols], scratch)
			}
		}(w)
	}
	wg.Wait()
	return m
}

// radixSort sorts x ascending (NaNs last) with three 11-bit LSD passes over
// keys that order like the floats; scratch must hold 2·len(x).
func radixSort(x []float32, scratch []uint32) {
	n := len(x)
	keys, tmp := scratch[:n], scratch[n:2*n]
	for i, v := range x {
		b := math.Float32bits(v)
		if b&0x80000000 != 0 {
			b = ^b // negative: reverse order
		} else {
			b |= 0x80000000
		}
		keys[i] = b
	}
	var count [2048]int
	for shift := uint(0); shift < 33; shift += 11 {
		clear(count[:])
		for _, k := range keys {
			count[(k>>shift)&2047]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, k := range keys {
			d := (k >> shift) & 2047
			tmp[count[d]] = k
			count[d]++
		}
		keys, tmp = tmp, keys
	}
	for i, k := range keys {
		if k&0x80000000 != 0 {
			k &^= 0x80000000
		} else {
			k = ^k
		}
		x[i] = math.Float32frombits(k)
	}
}

// exactGain is the exact (float64) change of the objective if group g's
// permutation became p. Normally it takes only the rows that move, from the
// matrices the last cost computation of each site used (groupCost has just
// refreshed them); a weight that g touches twice, where the change is not a
// sum over sites, is recomputed whole.
func (mt *matcher) exactGain(g int, perms Perms, p []int) float64 {
	if mt.repeated[g] {
		before := 0.0
		for _, u := range mt.usesOf[g] {
			before += dot64(mt.uses[u].a, mt.permutedB(u, -1, perms))
		}
		prev := perms[g]
		perms[g] = p
		after := 0.0
		for _, u := range mt.usesOf[g] {
			after += dot64(mt.uses[u].a, mt.permutedB(u, -1, perms))
		}
		perms[g] = prev
		return after - before
	}
	gain := 0.0
	old := perms[g]
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		c := s.cols
		for i := range p {
			if p[i] == old[i] {
				continue
			}
			a := s.aMat[i*c : (i+1)*c]
			gain += dot64(a, s.bMat[p[i]*c:(p[i]+1)*c]) - dot64(a, s.bMat[old[i]*c:(old[i]+1)*c])
		}
	}
	return gain
}

// objective is Σ over permuted weight uses of ⟨W_A, π(W_B)⟩, in float64.
func (mt *matcher) objective(perms Perms) float64 {
	total := 0.0
	for u := range mt.uses {
		bp := mt.permutedB(u, -1, perms)
		total += dot64(mt.uses[u].a, bp)
	}
	return total
}

// useTensor returns the tensor that node s.Node reads at input s.Input,
// looking through Identity nodes. It is s.Tensor in the model the analysis
// was made on, and the right copy in a model where Apply split a shared
// tensor between users.
func useTensor(m *onnx.Model, weights map[string]*onnxpb.TensorProto, s graph.WeightSite) *onnxpb.TensorProto {
	nodes := m.Proto.GetGraph().GetNode()
	if s.Node < 0 || s.Node >= len(nodes) || s.Input < 0 || s.Input >= len(nodes[s.Node].Input) {
		return nil
	}
	return weights[weightBehind(identityInputs(nodes), weights, nodes[s.Node].Input[s.Input])]
}
