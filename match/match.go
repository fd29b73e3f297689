// Package match finds the permutation that aligns one model's hidden
// units to another's by weight matching (Git Re-Basin, Ainsworth et al.
// 2022): coordinate descent over the permutation groups, each step an exact
// linear assignment on sums of weight products, with block-structured steps
// for attention heads and grouped convolutions.
package match

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/hugepage"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// Options controls weight matching.
type Options struct {
	// Seed draws the order in which each sweep visits the groups.
	Seed uint64
	// MaxIter bounds the number of sweeps (default 100).
	MaxIter int
	// Init is the starting permutation. When nil, Start says where
	// matching starts.
	Init permute.Perms
	// Start chooses the start when Init is nil (see Start).
	Start Start
	// Restarts is the number of further descents run after the first,
	// each from Init (the identity when Init is nil), as in the paper,
	// visiting the groups in an order of its own drawn from Seed; the
	// result is the descent with the highest final objective (the
	// earliest on a tie). Coordinate descent ends in a local optimum
	// that depends on the start and the order; keeping the best of
	// several is a higher optimum of the same objective, not always a
	// better merge (issue 13: on the BatchNorm CNN pair it was on
	// average, on the 32-unit MLP pair not). Each restart costs about one
	// more matching; Progress reports the sweeps of every descent in turn.
	Restarts int
	// Progress, if set, is called after every sweep.
	Progress func(s Sweep)
	// Context, if set, stops matching with its error when cancelled.
	Context context.Context
}

// Start is where coordinate descent starts when Options.Init is nil.
type Start int

const (
	// StartAuto, the default, is StartSignature for a model in which some
	// group's channels are computed by more than one layer
	// (graph.Group.Layers above 1: a residual stream, a depthwise
	// convolution, attention's queries and keys), and StartIdentity
	// otherwise. Descent from the identity stalls on the former, whose
	// groups' costs are dominated by neighbours still unaligned; on plain
	// stacks of layers the paper's identity start merged better (issue
	// 13: over 64 seeds, +0.0020 on the BatchNorm CNN pair, +0.0008 on
	// the MLP; −0.084 on the BatchNorm ResNet).
	StartAuto Start = iota
	// StartSignature pairs each group's units by a statistic of their
	// weights that no permutation of the other groups can change, and
	// starts from whichever scores higher of that and the identity.
	StartSignature
	// StartIdentity starts from the identity, as the paper does.
	StartIdentity
)

// String returns the start's name: auto, signature or identity.
func (s Start) String() string {
	switch s {
	case StartAuto:
		return "auto"
	case StartSignature:
		return "signature"
	case StartIdentity:
		return "identity"
	}
	return fmt.Sprintf("Start(%d)", int(s))
}

// resolve returns the start that StartAuto stands for in the model that
// ga analyses; any other start is itself.
func (s Start) resolve(ga *graph.Analysis) Start {
	if s != StartAuto {
		return s
	}
	for _, g := range ga.Groups {
		if g.Layers > 1 {
			return StartSignature
		}
	}
	return StartIdentity
}

// Sweep reports one pass of coordinate descent over all groups.
type Sweep struct {
	N         int           // 1-based sweep number
	Objective float64       // Σ⟨W_A, π(W_B)⟩ after the sweep
	Changed   int           // groups whose permutation changed
	Elapsed   time.Duration // since matching started
}

// Result is the outcome of weight matching.
type Result struct {
	Perms           permute.Perms
	Sweeps          []Sweep
	ObjectiveBefore float64 // at the identity
	ObjectiveAfter  float64
	// Start is where the first descent started: StartSignature or
	// StartIdentity (Options.Start resolved), StartAuto when Options.Init
	// was given.
	Start Start
	// Descents holds the final objective of every descent when
	// Options.Restarts is above 0 (the first descent's first); Sweeps are
	// those of the descent kept.
	Descents []float64
}

// matchSite is one group site of one weight use: the group's units along
// one axis, read as a rows × cols matrix (see layout.go).
type matchSite struct {
	use   int // index into matcher.uses
	group int
	axis  int
	block int
	off   int // index of the group's first unit on axis
	rows  int // group size (units per block for a Within site)
	cols  int // everything else
	// within, when not 0, is the units per block of a Within site: it
	// holds one block's units and moves by the group's shared
	// within-block permutation; it is in no group's cost (see blockStep).
	within int
	// repeat, when above 1, says that the axis holds every block of
	// perBlock units repeat times (graph.WeightSite.Repeat): row u is
	// copy 0 of unit u and the copies are columns.
	repeat, perBlock int
	// rowOff[r] is the offset of row r in the tensor, in A and B alike:
	// rows come in chunks of chunk rows (all of them unless repeat > 1),
	// evenly spaced within one: rowOff[c] + r·rowStride for the r-th row
	// of the chunk that starts at row c.
	rowOff    []int
	rowStride int
	chunk     int
	// aCol and aRuns are A's column offsets and their runs.
	aCol  []int
	aRuns []simd.Run
	// colOff holds B's column offsets, with the other groups' permutations
	// as they were when this site's term entered its group's cost; next is
	// scratch for the current ones.
	colOff, next []int
	runs         []simd.Run
	// deps are the groups whose permutations colOff depends on: those of
	// the use's sites on other axes. seenGen is the highest of their
	// generations (matcher.permGen) when colOff was taken from the
	// tracked permutations, 0 when it was taken from others; next is
	// valid while fresh.
	deps    []int
	seenGen uint64
	fresh   bool
}

// matchUse is one node input that reads a permuted weight.
type matchUse struct {
	tensor string
	dims   []int
	a, b   []float32
	sites  []int   // indices into matcher.sites
	maps   [][]int // per axis: the index each index reads under the current permutations; nil = identity
	mapBuf [][]int // storage for maps
	// mapsFrom[k] is the permutation of site sites[k]'s group that maps
	// was built from (nil before the first build): setMaps skips the
	// rebuild while they are all unchanged, as in most calls of later
	// sweeps.
	mapsFrom [][]int
}

type matcher struct {
	groups  []graph.Group
	uses    []matchUse
	sites   []matchSite
	byGroup [][]int // group → site indices
	usesOf  [][]int // group → indices of the uses it touches
	// withinOf[g] lists g's Within sites (not in byGroup).
	withinOf [][]int
	// setOf[g] is the index of g's block set, -1 for a flat group.
	setOf []int
	sets  [][]int // the analysis's block sets
	// repeated[g]: some weight use has g on more than one site.
	repeated []bool
	// neighbours[g]: the groups whose cost changes when g moves (those
	// sharing a weight use with g, and g itself if repeated).
	neighbours [][]int
	// cost[g] is Σ over g's sites of A·Bᵀ, as of the sites' colOff; nil
	// until first computed. costVersion[g] counts its changes.
	cost        [][]float64
	costVersion []int
	// spareCost[g], if not nil, is memory of g's cost size for cost[g]
	// (left by the signature start).
	spareCost [][]float64
	// costWork[g] is the multiply-adds of g's whole cost: n² per column of
	// its sites.
	costWork []int
	// scratch, reused so that matching touches little fresh memory
	lBuf   []float32   // signatures only
	main   costScratch // the descent's own goroutine's
	useBuf useScratch  // for exactGain
	// how group costs were brought up to date (for tests)
	fullCosts, deltaCosts atomic.Int32
	// solving counts the assignment solves running on goroutines; each
	// takes a core, which the products leave to it (see gemmWorkers).
	solving atomic.Int32
	// tracked are the descent's permutations, whose moves it reports
	// (track, assign): permGen[g] is the generation of g's, raised from
	// gen at each move, so that a site whose deps have not moved since its
	// column offsets were taken skips recomputing them (siteCurrent). On
	// DenseNet-121 a group has up to a hundred sites, of which a move of
	// one neighbour changes a few; recomputing them all took 0.1 s of its
	// 0.8 s.
	tracked permute.Perms
	permGen []uint64
	gen     uint64
}

// track makes perms the tracked permutations, as if every group had
// just moved. From here on perms[g] must change only by assign (or be
// reported with moved), never in place.
func (mt *matcher) track(perms permute.Perms) {
	mt.tracked = perms
	mt.gen++
	if mt.permGen == nil {
		mt.permGen = make([]uint64, len(mt.groups))
	}
	for g := range mt.permGen {
		mt.permGen[g] = mt.gen
	}
}

// moved records that the tracked perms[g] has changed.
func (mt *matcher) moved(g int) {
	mt.gen++
	mt.permGen[g] = mt.gen
}

// assign is how the descent moves group g: perms[g] = p, reported (see
// track). A move reported for untracked permutations only makes sites
// recompute their offsets.
func (mt *matcher) assign(perms permute.Perms, g int, p []int) {
	perms[g] = p
	if mt.permGen != nil {
		mt.moved(g)
	}
}

// isTracked reports whether perms is the tracked permutations (the same
// slice, not an equal one).
func (mt *matcher) isTracked(perms permute.Perms) bool {
	return skipCurrentSites && len(perms) > 0 && len(perms) == len(mt.tracked) && &perms[0] == &mt.tracked[0]
}

// depsGen is the highest generation of site s's deps.
func (mt *matcher) depsGen(s *matchSite) uint64 {
	var gen uint64
	for _, h := range s.deps {
		gen = max(gen, mt.permGen[h])
	}
	return gen
}

// siteCurrent reports whether site s's colOff holds the offsets under
// the tracked permutations: taken from them, with no dep moved since.
func (mt *matcher) siteCurrent(s *matchSite) bool {
	return s.seenGen > 0 && mt.depsGen(s) <= s.seenGen
}

// costScratch is the scratch of one goroutine computing group costs.
type costScratch struct{ rBuf, tmp32 []float32 }

// gemmWorkers is the number of goroutines for a product now: the cores
// that no assignment solve holds, at least one.
func (mt *matcher) gemmWorkers() int {
	return max(1, runtime.GOMAXPROCS(0)-int(mt.solving.Load()))
}

// Weights finds permutations of b's groups that maximise Σ⟨W_A, π(W_B)⟩
// over all permuted learned weights, by the coordinate descent of Ainsworth et al.
// (PermutationCoordinateDescent): each step solves one group's linear
// assignment problem exactly with the other groups held fixed, so the
// objective never decreases. As in the paper, statistics of the data
// (BatchNormalization's running mean and variance, graph.WeightSite's
// Statistic) are not scored; permute.Apply permutes them with their channels. ga must be the analysis of a; a and b must
// have the same architecture (see permute.SameArchitecture).
//
// Coordinate descent from the identity can stall in a poor local optimum
// when a group's cost is dominated by neighbours that are still unaligned
// (seen on MobileNetV2, whose depthwise layers give each unit few weights
// of its own, and on residual networks). So where some group is computed
// by more than one layer, unless told otherwise, it also builds a
// signature start, pairing each group's units by a statistic of their
// weights that no permutation of the other groups can change, and descent
// starts from whichever of the two scores higher (see Start).
//
// With Options.Restarts, further descents follow the first and the one that
// ends highest is returned.
func Weights(a, b *onnx.Model, ga *graph.Analysis, opts Options) (*Result, error) {
	if opts.Restarts < 0 {
		return nil, fmt.Errorf("restarts %d: must not be negative", opts.Restarts)
	}
	res, err := descend(a, b, ga, opts, 0)
	if err != nil || opts.Restarts == 0 {
		return res, err
	}
	res.Descents = []float64{res.ObjectiveAfter}
	first := res.Start
	for r := 1; r <= opts.Restarts; r++ {
		o := opts
		o.Start = StartIdentity // Init, when given, still wins
		next, err := descend(a, b, ga, o, uint64(r))
		if err != nil {
			return nil, err
		}
		res.Descents = append(res.Descents, next.ObjectiveAfter)
		if next.ObjectiveAfter > res.ObjectiveAfter {
			next.Descents = res.Descents
			res = next
		}
	}
	res.Start = first
	return res, nil
}

// descend runs one coordinate descent (see Weights), visiting the groups in
// orders drawn from opts.Seed and stream: stream 0 is the first descent,
// each restart has a stream of its own.
func descend(a, b *onnx.Model, ga *graph.Analysis, opts Options, stream uint64) (*Result, error) {
	start := time.Now()
	if err := sitelayout.CheckFit(ga, a, b); err != nil {
		return nil, err
	}
	mt, err := newMatcher(a, b, ga)
	if err != nil {
		return nil, err
	}
	// Column duals of each group's last solve, to warm-start its next:
	// later sweeps change a group's cost little.
	duals := make([][]float64, len(mt.groups))
	var solver lap.Solver
	res := &Result{ObjectiveBefore: mt.objective(permute.Identity(ga))}
	perms, objective := permute.Identity(ga), res.ObjectiveBefore
	switch {
	case opts.Init != nil:
		perms = clonePerms(opts.Init)
		if err := perms.Check(ga); err != nil {
			return nil, fmt.Errorf("initial permutation: %w", err)
		}
		objective = mt.objective(perms)
	case opts.Start.resolve(ga) == StartIdentity:
		res.Start = StartIdentity
	default:
		res.Start = StartSignature
		sig, err := mt.signatureStart()
		if err != nil {
			return nil, err
		}
		if o := mt.objective(sig); o > objective {
			perms, objective = sig, o
		}
	}
	maxIter := opts.MaxIter
	if maxIter <= 0 {
		maxIter = 100
	}
	mt.track(perms)
	rng := rand.New(rand.NewPCG(opts.Seed, 0x2545f4914f6cdd1d+stream))
	settled := make([]bool, len(mt.groups))
	// A block set is one coordinate (see blockStep), taken at the first of
	// its groups in the sweep's order.
	visited := make([]int, len(ga.BlockSets))
	// Assignments are solved on goroutines (queue), so that while one is
	// solved the next groups' costs can be computed and their assignments
	// solved too, on goroutines of their own, when no group visited before
	// them shares a weight with them: nothing the descent does before
	// their turn then changes their cost. A speculative solve is used if,
	// at its group's turn, the cost has not changed since; the solver is
	// deterministic, so it is the solve the turn would make, and the
	// descent is the sequential one (see TestSameDescentAsPlain). Until
	// a speculative cost is computed, the descent leaves alone what it
	// reads: the weight uses of its group (waitCost before any group that
	// shares one is visited).
	queue := newSolveQueue(&mt.solving)
	defer queue.drain()
	for sweep := 1; sweep <= maxIter; sweep++ {
		changed := 0
		order := rng.Perm(len(mt.groups))
		for k, g := range order {
			if err := sitelayout.ContextErr(opts.Context); err != nil {
				return nil, err
			}
			if si := mt.setOf[g]; si >= 0 {
				set := ga.BlockSets[si]
				if visited[si] == sweep || !slices.ContainsFunc(set, func(h int) bool { return !settled[h] }) {
					continue
				}
				visited[si] = sweep
				for _, h := range set {
					settled[h] = true
				}
				queue.waitCosts()
				gain, moved, err := mt.blockStep(set, perms, objective, &solver)
				if err != nil {
					return nil, fmt.Errorf("groups %v: %w", set, err)
				}
				if !moved {
					continue
				}
				for _, h := range set {
					for _, x := range mt.neighbours[h] {
						settled[x] = false
					}
				}
				changed++
				objective += gain
				continue
			}
			if settled[g] {
				// Nothing g's cost depends on has moved since its last
				// solve kept its permutation: the solve would again.
				continue
			}
			settled[g] = true
			n := mt.groups[g].Size
			spec := queue.take(g)
			queue.waitCost(mt.neighbours[g])
			cost := mt.groupCost(g, perms) // no work if computed ahead
			var r assignment
			adopted := spec != nil && spec.version == mt.costVersion[g]
			switch {
			case adopted:
				r = spec.result
			case lookAhead:
				queue.start(g, mt.costVersion[g], n, cost, perms[g], duals[g])
			default:
				r = solveAssignment(&solver, n, cost, perms[g], duals[g])
			}
			if lookAhead {
				for _, h := range mt.aheadOf(g, order[k+1:], settled, queue) {
					if mt.costWork[h] > asyncCostWork {
						// Large products use every free core from here.
						c := mt.groupCost(h, perms)
						queue.start(h, mt.costVersion[h], mt.groups[h].Size, c, perms[h], duals[h])
						continue
					}
					queue.startAhead(h, mt.groups[h].Size, perms[h], duals[h], func(sc *costScratch) (int, []float64) {
						c := mt.groupCostWith(h, perms, sc)
						return mt.costVersion[h], c
					})
				}
				if !adopted {
					r = queue.take(g).result
				}
			}
			old := 0.0
			for i, j := range perms[g] {
				old += cost[i*n+j]
			}
			if r.err != nil {
				return nil, fmt.Errorf("group %d: %w", g, r.err)
			}
			duals[g] = r.duals
			p, total := r.perm, r.total
			if total <= old+1e-12*math.Abs(old) || slices.Equal(p, perms[g]) {
				continue
			}
			// The cost matrix carries float32 rounding, so check the
			// move on the exact objective of the weights g touches. Only
			// a strict improvement moves: ties keep the current
			// permutation, so the objective never decreases and the
			// descent terminates.
			if gain := mt.exactGain(g, perms, p); gain > 1e-12*math.Abs(objective) {
				mt.assign(perms, g, p)
				changed++
				objective += gain
				for _, h := range mt.neighbours[g] {
					settled[h] = false
				}
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
	queue.drain()
	res.Perms = perms
	res.ObjectiveAfter = mt.objective(perms)
	return res, nil
}

// skipCurrentSites enables skipping, in groupCost, the sites whose
// offsets are current (see matcher.track); a variable so that tests can
// compare with recomputing them all.
var skipCurrentSites = true

// lookAhead enables computing the next groups' costs and assignments
// early (see Weights); a variable so that tests can compare with the
// plain order.
var lookAhead = true

// asyncCostWork is the most multiply-adds (see matcher.costWork) of a
// group cost computed ahead on a goroutine of its own: one core does it in
// a few milliseconds. Larger ones are computed where the descent is, on
// every core that no solve holds; on a goroutine of their own they held
// one core, which left VGG-11's descent 30% slower.
const asyncCostWork = 1 << 25

// maxAhead bounds the assignments solved ahead of the current group's. A
// solve started too early is more likely to be stale by its turn, but since
// the auction start (lap) solves are short next to the cost products, and
// two in flight left a core idle between them on 2-core machines (issue
// 18); a variable so that tests can try other depths.
var maxAhead = 4

// aheadOf returns the groups whose costs to compute and assignments to
// start now, while group g is visited: among the next few unsettled groups
// in order (the rest of the sweep), those without a solve in queue that
// share no weight with g, with any unsettled group visited before them, nor
// with any group in queue (whose cost may still be computing).
func (mt *matcher) aheadOf(g int, order []int, settled []bool, queue *solveQueue) []int {
	var ahead, before []int
	before = append(before, g)
	room := maxAhead - queue.len()
	if queue.has(g) {
		room++ // g's own solve
	}
	for _, h := range order {
		if room <= 0 || len(before) > maxAhead+1 {
			break
		}
		if settled[h] {
			continue
		}
		if mt.setOf[h] >= 0 { // solved with its set, never ahead
			before = append(before, h)
			continue
		}
		if !queue.has(h) && !slices.ContainsFunc(before, func(x int) bool { return slices.Contains(mt.neighbours[x], h) }) &&
			!slices.ContainsFunc(mt.neighbours[h], queue.has) {
			ahead = append(ahead, h)
			room--
		}
		before = append(before, h)
	}
	return ahead
}

func clonePerms(p permute.Perms) permute.Perms {
	c := make(permute.Perms, len(p))
	for i := range p {
		c[i] = append([]int(nil), p[i]...)
	}
	return c
}

func newMatcher(a, b *onnx.Model, ga *graph.Analysis) (*matcher, error) {
	mt := &matcher{groups: ga.Groups, byGroup: make([][]int, len(ga.Groups)), cost: make([][]float64, len(ga.Groups)),
		costVersion: make([]int, len(ga.Groups)), withinOf: make([][]int, len(ga.Groups))}
	// The analysis in each model's own form (see graph.Analysis.For):
	// site k of group g is the same node input in both.
	onA, err := ga.For(a)
	if err != nil {
		return nil, err
	}
	onB, err := ga.For(b)
	if err != nil {
		return nil, err
	}
	sa, sb := graph.NewSources(a), graph.NewSources(b)
	useIndex := map[[2]int]int{}
	for gi, grp := range ga.Groups {
		for k, s := range grp.Weights {
			if s.Statistic {
				// Permuted by permute.Apply with its channels, never scored:
				// the paper's objective is over learned weights only.
				continue
			}
			key := [2]int{s.Node, s.Input}
			ui, ok := useIndex[key]
			if !ok {
				ta, tb := sitelayout.UseTensor(a, sa, onA.Groups[gi].Weights[k]), sitelayout.UseTensor(b, sb, onB.Groups[gi].Weights[k])
				if ta == nil || tb == nil {
					return nil, fmt.Errorf("weight %q missing", s.Tensor)
				}
				if !onnx.IsFloat(onnx.DataType(ta)) {
					return nil, fmt.Errorf("weight %q: type %v cannot be matched", s.Tensor, onnx.DataType(ta))
				}
				fa, err := a.Float32View(ta)
				if err != nil {
					return nil, err
				}
				fb, err := b.Float32View(tb)
				if err != nil {
					return nil, err
				}
				dims := make([]int, len(ta.Dims))
				for i, d := range ta.Dims {
					dims[i] = int(d)
				}
				ui = len(mt.uses)
				useIndex[key] = ui
				mt.uses = append(mt.uses, matchUse{tensor: s.Tensor, dims: dims, a: fa, b: fb,
					maps: make([][]int, len(dims)), mapBuf: make([][]int, len(dims))})
			}
			u := &mt.uses[ui]
			if s.Axis < 0 || s.Axis >= len(u.dims) {
				return nil, fmt.Errorf("weight %q: axis %d out of range", s.Tensor, s.Axis)
			}
			block := max(s.Block, 1)
			rows, within := grp.Size, 0
			if s.Within {
				if grp.Blocks < 2 || !grp.SharedWithin || block != 1 || s.Offset != 0 {
					return nil, fmt.Errorf("weight %q axis %d: a site of one block of group %d, which does not share its blocks' permutation", s.Tensor, s.Axis, gi)
				}
				rows = grp.Size / grp.Blocks
				within = rows
			}
			repeat, perBlock := max(s.Repeat, 1), grp.Size/max(grp.Blocks, 1)
			if repeat > 1 && within > 0 || perBlock == 0 || grp.Size%perBlock != 0 {
				return nil, fmt.Errorf("weight %q axis %d: group %d's blocks cannot be repeated", s.Tensor, s.Axis, gi)
			}
			if s.Offset < 0 || s.Offset+rows*block*repeat > u.dims[s.Axis] {
				return nil, fmt.Errorf("weight %q axis %d: group %d does not fit", s.Tensor, s.Axis, gi)
			}
			chunk := rows
			if repeat > 1 {
				chunk = perBlock
			}
			si := len(mt.sites)
			mt.sites = append(mt.sites, matchSite{use: ui, group: gi, axis: s.Axis, block: block, off: s.Offset, rows: rows,
				within: within, repeat: repeat, perBlock: perBlock, chunk: chunk,
				rowOff: sitelayout.RepeatRowOffsets(u.dims, s.Axis, block, s.Offset, rows, perBlock, repeat)})
			u.sites = append(u.sites, si)
			if within > 0 {
				mt.withinOf[gi] = append(mt.withinOf[gi], si)
			} else {
				mt.byGroup[gi] = append(mt.byGroup[gi], si)
			}
		}
	}
	mt.usesOf = make([][]int, len(ga.Groups))
	mt.repeated = make([]bool, len(ga.Groups))
	for g, sites := range mt.byGroup {
		for _, si := range append(slices.Clone(sites), mt.withinOf[g]...) {
			u := mt.sites[si].use
			if slices.Contains(mt.usesOf[g], u) {
				mt.repeated[g] = true
			} else {
				mt.usesOf[g] = append(mt.usesOf[g], u)
			}
		}
	}
	mt.neighbours = make([][]int, len(ga.Groups))
	for g := range ga.Groups {
		for _, u := range mt.usesOf[g] {
			for _, si := range mt.uses[u].sites {
				h := mt.sites[si].group
				if (h != g || mt.repeated[g]) && !slices.Contains(mt.neighbours[g], h) {
					mt.neighbours[g] = append(mt.neighbours[g], h)
				}
			}
		}
	}
	for i := range mt.sites {
		s := &mt.sites[i]
		use := &mt.uses[s.use]
		s.colOff = s.colOffsets(use, nil)
		s.cols = len(s.colOff)
		s.runs = sitelayout.RunsOf(s.colOff, nil)
		s.aCol = slices.Clone(s.colOff)
		s.aRuns = slices.Clone(s.runs)
		if s.rows > 1 {
			s.rowStride = s.rowOff[1] - s.rowOff[0]
		}
		for _, ti := range use.sites {
			if t := &mt.sites[ti]; t.axis != s.axis && !slices.Contains(s.deps, t.group) {
				s.deps = append(s.deps, t.group)
			}
		}
	}
	mt.costWork = make([]int, len(ga.Groups))
	for g, sites := range mt.byGroup {
		n := mt.groups[g].Size
		for _, si := range sites {
			mt.costWork[g] += n * n * mt.sites[si].cols
		}
	}
	if len(mt.sites) == 0 && len(ga.Groups) > 0 {
		return nil, errors.New("groups have no weights to match")
	}
	mt.setOf, mt.sets = sitelayout.SetsOf(ga), ga.BlockSets
	if err := mt.checkSets(ga.BlockSets); err != nil {
		return nil, err
	}
	return mt, nil
}

// setMaps fills use.maps from perms: on every axis that a site permutes,
// the index each index reads.
func (mt *matcher) setMaps(use *matchUse, perms permute.Perms) {
	if mt.mapsCurrent(use, perms) {
		return
	}
	if use.mapsFrom == nil {
		use.mapsFrom = make([][]int, len(use.sites))
	}
	for k, si := range use.sites {
		use.mapsFrom[k] = append(use.mapsFrom[k][:0], perms[mt.sites[si].group]...)
	}
	clear(use.maps)
	for _, si := range use.sites {
		s := &mt.sites[si]
		m := use.maps[s.axis]
		if m == nil {
			n := use.dims[s.axis]
			if cap(use.mapBuf[s.axis]) < n {
				use.mapBuf[s.axis] = make([]int, n)
			}
			m = use.mapBuf[s.axis][:n]
			for i := range m {
				m[i] = i
			}
			use.maps[s.axis] = m
		}
		if s.within > 0 {
			for i := 0; i < s.within; i++ {
				m[i] = perms[s.group][i] % s.within
			}
			continue
		}
		switch {
		case s.repeat == 1:
			// Most sites: UnitIndex is off + u·block, without its divisions.
			for i, j := range perms[s.group] {
				to, from := s.off+i*s.block, s.off+j*s.block
				for k := 0; k < s.block; k++ {
					m[to+k] = from + k
				}
			}
		default:
			for i, j := range perms[s.group] {
				for c := 0; c < s.repeat; c++ {
					to, from := sitelayout.UnitIndex(i, c, s.perBlock, s.repeat, s.block, s.off), sitelayout.UnitIndex(j, c, s.perBlock, s.repeat, s.block, s.off)
					for k := 0; k < s.block; k++ {
						m[to+k] = from + k
					}
				}
			}
		}
	}
}

// mapsCurrent reports whether use.maps were built from perms.
func (mt *matcher) mapsCurrent(use *matchUse, perms permute.Perms) bool {
	if use.mapsFrom == nil {
		return false
	}
	for k, si := range use.sites {
		if !slices.Equal(use.mapsFrom[k], perms[mt.sites[si].group]) {
			return false
		}
	}
	return true
}

// scratch returns buf grown to n elements.
func scratch(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = hugepage.Make[float32](n)
	}
	return (*buf)[:n]
}

// runMatrix is site s's matrix in data (A's or B's tensor) with column
// runs runs, read in place.
func (s *matchSite) runMatrix(data []float32, runs []simd.Run) simd.RunMatrix {
	return s.chunkMatrix(data, runs, 0)
}

// chunkMatrix is the rows of site s's matrix from row r on, up to the end
// of their chunk (see matchSite.rowOff).
func (s *matchSite) chunkMatrix(data []float32, runs []simd.Run, r int) simd.RunMatrix {
	return simd.RunMatrix{Data: data[s.rowOff[r]:], RowStride: s.rowStride, Runs: runs}
}

// colOffsets returns the site's column offsets with use's current maps
// (see sitelayout.RepeatColOffsets), written into dst.
func (s *matchSite) colOffsets(use *matchUse, dst []int) []int {
	return sitelayout.RepeatColOffsets(use.dims, s.axis, s.block, s.repeat, s.perBlock*s.block, use.maps, dst)
}

// groupCost returns the n×n matrix whose entry (i, j) is the gain of
// mapping B's unit j to A's unit i, summed over all the group's sites with
// every other permutation applied to B. The matrix is kept between calls
// (callers must not change it): when other groups have moved only some of
// a site's columns, it is updated by the change of those columns alone,
// with float64 accumulation; otherwise it is recomputed.
func (mt *matcher) groupCost(g int, perms permute.Perms) []float64 {
	return mt.groupCostWith(g, perms, &mt.main)
}

// groupCostWith is groupCost with the scratch sc. It touches nothing of
// the matcher's but g's sites and cost and the maps of g's weight uses, so
// it can compute g's cost on another goroutine while the descent goes on
// with groups that share no weight with g (see aheadOf).
func (mt *matcher) groupCostWith(g int, perms permute.Perms, sc *costScratch) []float64 {
	n := mt.groups[g].Size
	tracked := mt.isTracked(perms)
	changed, fullWork, deltaWork := 0, 0, 0
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		fullWork += s.cols
		s.fresh = !tracked || !mt.siteCurrent(s)
		if !s.fresh {
			continue
		}
		use := &mt.uses[s.use]
		mt.setMaps(use, perms)
		s.next = s.colOffsets(use, s.next)
		q := 0
		for c, o := range s.next {
			if o != s.colOff[c] {
				q++
			}
		}
		if q > 0 {
			changed++
		}
		// One product over the changed columns at about half the float32
		// speed.
		deltaWork += 2 * q
	}
	defer mt.markSeen(g, tracked)
	cost := mt.cost[g]
	switch {
	case cost != nil && changed == 0:
		return cost
	case cost != nil && deltaWork < fullWork:
		mt.deltaCosts.Add(1)
		mt.costVersion[g]++
		for _, si := range mt.byGroup[g] {
			if s := &mt.sites[si]; s.fresh {
				mt.updateSite(s, cost, sc)
			}
		}
		return cost
	}
	switch {
	case cost != nil:
		clear(cost)
	case g < len(mt.spareCost) && len(mt.spareCost[g]) == n*n:
		cost = mt.spareCost[g]
		mt.spareCost[g] = nil
		clear(cost)
		mt.cost[g] = cost
	default:
		cost = hugepage.Make[float64](n * n)
		mt.cost[g] = cost
	}
	mt.fullCosts.Add(1)
	mt.costVersion[g]++
	tmp := scratch(&sc.tmp32, n*n)
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		if s.fresh {
			s.colOff, s.next = s.next, s.colOff
			s.runs = sitelayout.RunsOf(s.colOff, s.runs)
		}
		use := &mt.uses[s.use]
		// One product, or one per pair of chunks when rows are not evenly
		// spaced (repeated blocks).
		workers := mt.gemmWorkers()
		for r := 0; r < n; r += s.chunk {
			for c := 0; c < n; c += s.chunk {
				simd.GemmRuns(workers, s.chunk, s.chunk, s.cols, s.chunkMatrix(use.a, s.aRuns, r), s.chunkMatrix(use.b, s.runs, c), tmp[r*n+c:], n)
			}
		}
		addWidened(cost, tmp, workers)
	}
	return cost
}

// markSeen records, for each of group g's sites, the generation of the
// permutations its colOff was just taken from (see siteCurrent).
func (mt *matcher) markSeen(g int, tracked bool) {
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		s.fresh = false
		s.seenGen = 0
		if tracked {
			s.seenGen = max(mt.depsGen(s), 1)
		}
	}
}

// updateSite adds to cost the change of site s's term from the columns
// whose offsets differ between s.colOff and s.next, then makes s.next
// current: cost += A_Q·(B_new − B_old)ᵀ, a float64-accumulated product.
// The float32 differences round once each (exact when the two values are
// within a factor of 2), far less than a float32 product would.
func (mt *matcher) updateSite(s *matchSite, cost []float64, sc *costScratch) {
	// Changed columns in runs whose offsets in A and in old and new B
	// are consecutive (a conv kernel's taps move together).
	type delta struct{ a, from, to, n int }
	var runs []delta
	q := 0
	for c := 0; c < len(s.next); {
		if s.next[c] == s.colOff[c] {
			c++
			continue
		}
		e := c + 1
		for e < len(s.next) && s.next[e] != s.colOff[e] && s.next[e] == s.next[e-1]+1 &&
			s.colOff[e] == s.colOff[e-1]+1 && s.aCol[e] == s.aCol[e-1]+1 {
			e++
		}
		runs = append(runs, delta{s.aCol[c], s.colOff[c], s.next[c], e - c})
		q += e - c
		c = e
	}
	if q == 0 {
		return
	}
	// A_Q is read in place; B_new − B_old is formed in r.
	n, k := s.rows, q
	r := scratch(&sc.rBuf, n*k)
	a, b := mt.uses[s.use].a, mt.uses[s.use].b
	aRuns := make([]simd.Run, len(runs))
	j := 0
	for x, d := range runs {
		aRuns[x] = simd.Run{Col: j, Off: d.a, Len: d.n}
		j += d.n
	}
	sitelayout.InParallel(n, min(runtime.GOMAXPROCS(0), n, n*k>>15+1), func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			ri := r[i*k : (i+1)*k]
			base := s.rowOff[i]
			j := 0
			for _, d := range runs {
				to, from := b[base+d.to:base+d.to+d.n], b[base+d.from:base+d.from+d.n]
				diff := ri[j : j+d.n]
				for t := range diff {
					diff[t] = to[t] - from[t]
				}
				j += d.n
			}
		}
	})
	for c := 0; c < n; c += s.chunk {
		simd.GemmF64AccRuns(mt.gemmWorkers(), s.chunk, n, k, s.chunkMatrix(a, aRuns, c),
			simd.RunMatrix{Data: r, RowStride: k, Runs: []simd.Run{{Col: 0, Off: 0, Len: k}}}, cost[c*n:], n)
	}
	s.colOff, s.next = s.next, s.colOff
	s.runs = sitelayout.RunsOf(s.colOff, s.runs)
}

// exactGain is the exact (float64) change of the objective if group g's
// permutation became p. Normally it takes only the rows that move, from the
// sites' A and B matrices (groupCost has just brought B's up to date); a
// weight that g touches twice, where the change is not a sum over sites, is
// recomputed whole.
func (mt *matcher) exactGain(g int, perms permute.Perms, p []int) float64 {
	if mt.repeated[g] {
		before := 0.0
		for _, u := range mt.usesOf[g] {
			before += mt.useObjective(u, perms, &mt.useBuf)
		}
		prev := perms[g]
		perms[g] = p
		after := 0.0
		for _, u := range mt.usesOf[g] {
			after += mt.useObjective(u, perms, &mt.useBuf)
		}
		perms[g] = prev
		return after - before
	}
	old := perms[g]
	var rows []int // the rows that move
	for i := range p {
		if p[i] != old[i] {
			rows = append(rows, i)
		}
	}
	gain := 0.0
	d := make([]float64, len(rows))
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		a, b := mt.uses[s.use].a, mt.uses[s.use].b
		runs := jointRuns(s.aCol, s.colOff, nil)
		// Row i's change ⟨A_i, B_p(i) − B_old(i)⟩, read in place run by
		// run (gathering the rows first cost more than the products), or
		// column by column where runs are short: a 1×1 convolution whose
		// input channels another group has permuted has runs of one
		// column, and a slice per column cost more than the products.
		// Rows in parallel, each summed in run order, then added up in
		// row order: the same result for any number of threads.
		byColumn := len(runs)*shortRun > s.cols
		workers := min(runtime.GOMAXPROCS(0), len(rows), len(rows)*s.cols>>15+1)
		sitelayout.InParallel(len(rows), workers, func(lo, hi int) {
			for k := lo; k < hi; k++ {
				i := rows[k]
				if byColumn {
					d[k] = rowChangeByColumn(a, b, s.rowOff[i], s.rowOff[p[i]], s.rowOff[old[i]], s.aCol, s.colOff)
				} else {
					d[k] = rowChange(a, b, s.rowOff[i], s.rowOff[p[i]], s.rowOff[old[i]], runs)
				}
			}
		})
		for _, v := range d {
			gain += v
		}
	}
	return gain
}

// jointRun is a stretch of n columns of a site whose offsets are
// consecutive both in A (from a on) and in B (from b on).
type jointRun struct{ a, b, n int }

// jointRuns splits a site's columns into runs consecutive in both A's
// column offsets aCol and B's bCol.
func jointRuns(aCol, bCol []int, dst []jointRun) []jointRun {
	dst = dst[:0]
	for c := 0; c < len(aCol); {
		e := c + 1
		for e < len(aCol) && aCol[e] == aCol[e-1]+1 && bCol[e] == bCol[e-1]+1 {
			e++
		}
		dst = append(dst, jointRun{aCol[c], bCol[c], e - c})
		c = e
	}
	return dst
}

// rowChange is ⟨A's row at ra, B's row at rNew − B's row at rOld⟩ in
// float64 over the given runs of columns: the change of a site's term
// when one row of B is replaced by another.
func rowChange(a, b []float32, ra, rNew, rOld int, runs []jointRun) float64 {
	sum := 0.0
	for _, q := range runs {
		x := a[ra+q.a : ra+q.a+q.n]
		if q.n >= 32 {
			sum += dot64(x, b[rNew+q.b:rNew+q.b+q.n]) - dot64(x, b[rOld+q.b:rOld+q.b+q.n])
			continue
		}
		yNew, yOld := b[rNew+q.b:rNew+q.b+q.n], b[rOld+q.b:rOld+q.b+q.n]
		t := 0.0
		for k, v := range x {
			// A float32 difference is exact in float64.
			t += float64(v) * (float64(yNew[k]) - float64(yOld[k]))
		}
		sum += t
	}
	return sum
}

// shortRun is the mean run length (columns) below which exactGain reads a
// site column by column rather than run by run.
const shortRun = 32

// rowChangeByColumn is rowChange over columns given one by one: A's column
// offsets aCol and B's bCol.
func rowChangeByColumn(a, b []float32, ra, rNew, rOld int, aCol, bCol []int) float64 {
	bCol = bCol[:len(aCol)]
	// Four sums break the chain of dependent additions.
	var s0, s1, s2, s3 float64
	c := 0
	for ; c+4 <= len(aCol); c += 4 {
		ac, bc := aCol[c:c+4:c+4], bCol[c:c+4:c+4]
		// A float32 difference is exact in float64.
		s0 += float64(a[ra+ac[0]]) * (float64(b[rNew+bc[0]]) - float64(b[rOld+bc[0]]))
		s1 += float64(a[ra+ac[1]]) * (float64(b[rNew+bc[1]]) - float64(b[rOld+bc[1]]))
		s2 += float64(a[ra+ac[2]]) * (float64(b[rNew+bc[2]]) - float64(b[rOld+bc[2]]))
		s3 += float64(a[ra+ac[3]]) * (float64(b[rNew+bc[3]]) - float64(b[rOld+bc[3]]))
	}
	for ; c < len(aCol); c++ {
		s0 += float64(a[ra+aCol[c]]) * (float64(b[rNew+bCol[c]]) - float64(b[rOld+bCol[c]]))
	}
	return (s0 + s1) + (s2 + s3)
}

// objective is Σ over permuted weight uses of ⟨W_A, π(W_B)⟩, in float64.
// The uses are shared out among goroutines and their terms summed in order,
// so the result does not depend on the number of threads.
func (mt *matcher) objective(perms permute.Perms) float64 {
	terms := make([]float64, len(mt.uses))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(mt.uses)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sc useScratch
			for u := int(next.Add(1) - 1); u < len(mt.uses); u = int(next.Add(1) - 1) {
				terms[u] = mt.useObjective(u, perms, &sc)
			}
		}()
	}
	wg.Wait()
	total := 0.0
	for _, t := range terms {
		total += t
	}
	return total
}

// useScratch is useObjective's scratch memory.
type useScratch struct {
	off []int
	row []float32
}

// useObjective is ⟨W_A, π(W_B)⟩ for one weight use, gathering π(W_B) a
// few rows at a time. Calls on different uses may run concurrently.
func (mt *matcher) useObjective(u int, perms permute.Perms, sc *useScratch) float64 {
	use := &mt.uses[u]
	moved := false
	for _, si := range use.sites {
		if !sitelayout.IsIdentity(perms[mt.sites[si].group]) {
			moved = true
		}
	}
	if !moved {
		return dot64(use.a, use.b)
	}
	mt.setMaps(use, perms)
	rows := 1
	if len(use.dims) > 0 {
		rows = use.dims[0]
	}
	cols := len(use.a) / max(rows, 1)
	if rows == 0 || cols == 0 {
		return 0
	}
	rowOff := make([]int, rows)
	for r := range rowOff {
		rowOff[r] = r * cols
		if len(use.dims) > 0 && use.maps[0] != nil {
			rowOff[r] = use.maps[0][r] * cols
		}
	}
	var colOff []int
	if len(use.dims) > 0 {
		colOff = sitelayout.ColOffsets(use.dims, 0, 1, use.maps, sc.off)
	} else {
		colOff = append(sc.off[:0], 0)
	}
	sc.off = colOff
	runs := sitelayout.RunsOf(colOff, nil)
	step := max(1, (1<<16)/cols)
	buf := scratch(&sc.row, min(step, rows)*cols)
	total := 0.0
	for r0 := 0; r0 < rows; r0 += step {
		r1 := min(r0+step, rows)
		m := buf[:(r1-r0)*cols]
		sitelayout.GatherMatrix(m, use.b, rowOff[r0:r1], runs, cols)
		total += dot64(use.a[r0*cols:r1*cols], m)
	}
	return total
}
