package match

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// TestGroupCostUpToDate moves a few units of some groups at a time (the
// cached cost matrices are then updated for the moved columns only) or
// reshuffles them (recomputed), and compares every group's cost matrix with
// a float64 evaluation of its definition, Σ over the group's sites of
// ⟨row i of A, row j of B with the other groups' permutations applied⟩.
// The grouped-query and multi-query models (B: a permuted copy of A) have
// sites whose rows are not evenly spaced (repeated K/V heads), multiplied
// per pair of blocks. It does so once with permutations changed in place,
// and once with tracked permutations, changed as the descent changes them
// (a new slice, reported with moved): sites none of whose deps moved are
// then skipped, and must still hold the current offsets.
func TestGroupCostUpToDate(t *testing.T) {
	for _, name := range []string{"mlp32", "cnn_bn", "cnn_fold", "resnet", "transformer", "attn_gqa", "attn_mqa"} {
		for _, tracked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s tracked %v", name, tracked), func(t *testing.T) {
				a, b, ga := testPair(t, name)
				mt := mustMatcher(t, a, b, ga)
				r := rand.New(rand.NewPCG(5, 6))
				perms := permute.Random(ga, 1)
				if tracked {
					mt.track(perms)
				}
				skipped := 0
				for round := 0; round < 6; round++ {
					for g := range perms {
						p := perms[g]
						if tracked {
							p = slices.Clone(p)
						}
						switch {
						case round == 0:
							continue
						case r.IntN(3) == 0:
							r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
						case r.IntN(2) == 0:
							for k := 0; k < 2; k++ {
								i, j := r.IntN(len(p)), r.IntN(len(p))
								p[i], p[j] = p[j], p[i]
							}
						default:
							continue
						}
						if tracked {
							perms[g] = p
							mt.moved(g)
						}
					}
					for g := range perms {
						for _, si := range mt.byGroup[g] {
							if mt.siteCurrent(&mt.sites[si]) {
								skipped++
							}
						}
						got := slices.Clone(mt.groupCost(g, perms))
						want, scale := exactGroupCost(mt, g, perms)
						for i := range want {
							if d := math.Abs(got[i] - want[i]); d > 1e-4*scale[i]+1e-12 {
								t.Fatalf("round %d group %d entry %d: cost %v, want %v (Σ|a||b| %v)", round, g, i, got[i], want[i], scale[i])
							}
						}
					}
				}
				if mt.deltaCosts.Load() == 0 || mt.fullCosts.Load() == 0 {
					t.Fatalf("updated %d and recomputed %d cost matrices: both paths should have run", mt.deltaCosts.Load(), mt.fullCosts.Load())
				}
				if tracked == (skipped == 0) {
					t.Fatalf("tracked %v: %d sites skipped", tracked, skipped)
				}
			})
		}
	}
}

// TestExactGain: exactGain is the change of the objective when one group's
// permutation changes, both on sites it reads run by run and on sites it
// reads column by column (short runs: convolutions whose input channels
// another group has permuted).
func TestExactGain(t *testing.T) {
	byColumn := map[bool]int{} // sites seen, by how exactGain reads them
	for _, name := range []string{"mlp", "cnn_bn", "resnet", "transformer"} {
		t.Run(name, func(t *testing.T) {
			a, b, ga := trainedPair(t, name)
			mt := mustMatcher(t, a, b, ga)
			r := rand.New(rand.NewPCG(9, 10))
			perms := permute.Random(ga, 3)
			for g := range perms {
				mt.groupCost(g, perms) // brings the sites' columns up to date
				for _, si := range mt.byGroup[g] {
					s := &mt.sites[si]
					byColumn[len(jointRuns(s.aCol, s.colOff, nil))*shortRun > s.cols]++
				}
				p := slices.Clone(perms[g])
				r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
				got := mt.exactGain(g, perms, p)
				before := mt.objective(perms)
				old := perms[g]
				perms[g] = p
				after := mt.objective(perms)
				perms[g] = old
				if want := after - before; math.Abs(got-want) > 1e-9*(math.Abs(before)+math.Abs(after)) {
					t.Errorf("group %d: exact gain %v, objective changed by %v", g, got, want)
				}
			}
		})
	}
	if byColumn[true] == 0 || byColumn[false] == 0 {
		t.Fatalf("sites read column by column: %d, run by run: %d; both should be tested", byColumn[true], byColumn[false])
	}
}

// TestSetMapsFollowsPerms: setMaps keeps a use's maps while the
// permutations they were built from are unchanged and rebuilds them when
// any changes, in place or by a new slice; after every change the maps
// equal those a fresh matcher builds. Sites with blocks (Flatten), repeats
// (grouped-query attention) and shared within-block permutations included.
func TestSetMapsFollowsPerms(t *testing.T) {
	for _, name := range []string{"cnn_bn", "resnet", "transformer", "attn_gqa"} {
		t.Run(name, func(t *testing.T) {
			path := "../testmodels/" + name + "_s0.onnx"
			if strings.HasPrefix(name, "attn_") {
				path = "../testmodels/" + name + ".onnx"
			}
			a, ga := testkit.LoadAnalyze(t, path)
			mt, err := newMatcher(a, a, ga)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(7, 8))
			perms := permute.Random(ga, 2)
			for round := 0; round < 8; round++ {
				g := r.IntN(len(perms))
				switch round % 3 {
				case 1: // in place
					i, j := r.IntN(len(perms[g])), r.IntN(len(perms[g]))
					perms[g][i], perms[g][j] = perms[g][j], perms[g][i]
				case 2: // a new slice
					perms[g] = slices.Clone(permute.Random(ga, uint64(round))[g])
				}
				fresh, err := newMatcher(a, a, ga)
				if err != nil {
					t.Fatal(err)
				}
				for u := range mt.uses {
					for rep := 0; rep < 2; rep++ { // the second call takes the cached maps
						mt.setMaps(&mt.uses[u], perms)
					}
					fresh.setMaps(&fresh.uses[u], perms)
					for axis, want := range fresh.uses[u].maps {
						if got := mt.uses[u].maps[axis]; !slices.Equal(got, want) {
							t.Fatalf("round %d, use %s axis %d: maps differ from a fresh build", round, mt.uses[u].tensor, axis)
						}
					}
				}
			}
		})
	}
}

// TestAheadOfSkipsQueuedNeighbours: the look-ahead never starts a group
// that shares a weight with a group whose cost is still being computed (the
// two would build the same index maps at once), and still starts others.
func TestAheadOfSkipsQueuedNeighbours(t *testing.T) {
	a, b, ga := trainedPair(t, "resnet")
	mt := mustMatcher(t, a, b, ga)
	near := func(x, y int) bool { return x == y || slices.Contains(mt.neighbours[x], y) }
	// h is in queue; the descent visits g; x (h's neighbour) and y (nobody's)
	// are the unsettled groups after g.
	pick := func() (h, x, g, y int, ok bool) {
		k := len(mt.groups)
		for i := range k * k * k * k {
			h, x, g, y = i%k, i/k%k, i/k/k%k, i/k/k/k
			if h != x && near(h, x) && !near(g, h) && !near(g, x) && !near(y, g) && !near(y, h) && !near(y, x) {
				return h, x, g, y, true
			}
		}
		return 0, 0, 0, 0, false
	}
	h, x, g, y, ok := pick()
	if !ok {
		t.Fatal("the pair has no groups to test with")
	}
	queue := newSolveQueue(&mt.solving)
	release := make(chan struct{})
	n := mt.groups[h].Size
	queue.startAhead(h, n, nil, nil, func(*costScratch) (int, []float64) {
		<-release // a cost still being computed
		return 0, make([]float64, n*n)
	})
	settled := make([]bool, len(mt.groups))
	for i := range settled {
		settled[i] = i != x && i != y
	}
	ahead := mt.aheadOf(g, []int{x, y}, settled, queue)
	close(release)
	queue.drain()
	if !slices.Equal(ahead, []int{y}) {
		t.Errorf("groups %v started ahead while group %d's cost is in queue, want [%d] (%d shares a weight with it)", ahead, h, y, x)
	}
}

// trainedPair loads the trained test pair name (seeds 0 and 1) and the
// analysis of the first.
func trainedPair(t *testing.T, name string) (a, b *onnx.Model, ga *graph.Analysis) {
	t.Helper()
	a, ga = testkit.LoadAnalyze(t, "../testmodels/"+name+"_s0.onnx")
	b, _ = testkit.LoadAnalyze(t, "../testmodels/"+name+"_s1.onnx")
	return a, b, ga
}

// testPair is trainedPair, or for a model trained once (the attention
// and grouped-conv models), the model and a randomly permuted copy.
func testPair(t *testing.T, name string) (a, b *onnx.Model, ga *graph.Analysis) {
	t.Helper()
	if !strings.HasPrefix(name, "attn_") && name != "gconv" {
		return trainedPair(t, name)
	}
	a, ga = testkit.LoadAnalyze(t, "../testmodels/"+name+".onnx")
	b = a.Clone()
	if err := permute.Apply(b, ga, permute.Random(ga, 9)); err != nil {
		t.Fatal(err)
	}
	return a, b, ga
}

// mustMatcher is newMatcher, failing t on an error.
func mustMatcher(t *testing.T, a, b *onnx.Model, ga *graph.Analysis) *matcher {
	t.Helper()
	mt, err := newMatcher(a, b, ga)
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

// exactGroupCost evaluates group g's cost matrix from its definition in
// float64, with Σ|a||b| per entry as the scale of rounding errors.
func exactGroupCost(mt *matcher, g int, perms permute.Perms) (cost, scale []float64) {
	n := mt.groups[g].Size
	cost, scale = make([]float64, n*n), make([]float64, n*n)
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		use := &mt.uses[s.use]
		plain := sitelayout.RepeatColOffsets(use.dims, s.axis, s.block, s.repeat, s.perBlock*s.block, make([][]int, len(use.dims)), nil)
		mt.setMaps(use, perms)
		moved := sitelayout.RepeatColOffsets(use.dims, s.axis, s.block, s.repeat, s.perBlock*s.block, use.maps, nil)
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				for c := range plain {
					p := float64(use.a[s.rowOff[i]+plain[c]]) * float64(use.b[s.rowOff[j]+moved[c]])
					cost[i*n+j] += p
					scale[i*n+j] += math.Abs(p)
				}
			}
		}
	}
	return cost, scale
}

// TestWeightMatchCoordinateOptimal: when weight matching stops, no single
// group can gain by re-solving its assignment on the exact (float64) cost,
// including the groups it skipped in the last sweeps because nothing
// around them had moved. The objective the descent kept (the start's plus
// every accepted move's gain) must also be the final permutation's.
func TestWeightMatchCoordinateOptimal(t *testing.T) {
	for _, name := range []string{"mlp32", "cnn_bn", "resnet", "transformer"} {
		t.Run(name, func(t *testing.T) {
			a, ga := testkit.LoadAnalyze(t, "../testmodels/"+name+"_s0.onnx")
			b, _ := testkit.LoadAnalyze(t, "../testmodels/"+name+"_s1.onnx")
			res, err := Weights(a, b, ga, Options{Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			kept := res.Sweeps[len(res.Sweeps)-1].Objective
			if math.Abs(kept-res.ObjectiveAfter) > 1e-9*math.Abs(res.ObjectiveAfter) {
				t.Errorf("objective kept by the descent %v, of its result %v", kept, res.ObjectiveAfter)
			}
			mt, err := newMatcher(a, b, ga)
			if err != nil {
				t.Fatal(err)
			}
			// A block set is one coordinate: re-solved jointly.
			for _, set := range ga.BlockSets {
				sizes, costs, pinned := make([]int, len(set)), make([][]float64, len(set)), make([][]int, len(set))
				cur := 0.0
				for k, g := range set {
					sizes[k] = ga.Groups[g].Size
					d := sizes[k] / ga.Groups[g].Blocks
					switch {
					case ga.Groups[g].FixedWithin:
						pinned[k] = sitelayout.IdentityPerm(d)
					case ga.Groups[g].SharedWithin:
						pinned[k] = sitelayout.WithinOf(res.Perms[g], d)
					}
					costs[k], _ = exactGroupCost(mt, g, res.Perms)
					for i, j := range res.Perms[g] {
						cur += costs[k][i*sizes[k]+j]
					}
				}
				var solver lap.Solver
				_, best, err := sitelayout.BlockSolve(&solver, ga.Groups[set[0]].Blocks, sizes, costs, pinned)
				if err != nil {
					t.Fatal(err)
				}
				if best > cur+1e-9*math.Abs(res.ObjectiveAfter) {
					t.Errorf("block set %v: re-solving gains %g (objective %g)", set, best-cur, res.ObjectiveAfter)
				}
			}
			for g, grp := range ga.Groups {
				if grp.Blocks > 1 {
					continue
				}
				n := grp.Size
				cost, _ := exactGroupCost(mt, g, res.Perms)
				cur := 0.0
				for i, j := range res.Perms[g] {
					cur += cost[i*n+j]
				}
				_, best, err := lap.Solve(n, cost)
				if err != nil {
					t.Fatal(err)
				}
				if best > cur+1e-9*math.Abs(res.ObjectiveAfter) {
					t.Errorf("group %d: re-solving gains %g (objective %g)", g, best-cur, res.ObjectiveAfter)
				}
			}
		})
	}
}

// TestSameDescentAsPlain checks that computing costs ahead, in parallel
// with the assignments, and skipping the sites whose offsets are current
// (see matcher.track) change nothing: the same permutations and the same
// objective after every sweep as the plain sequential descent, which
// recomputes every site's offsets, on every trained pair and seeds 0 to 2,
// and on permuted copies of models with block sets, from the identity (the
// signature start would match those at once, leaving the block steps
// nothing to move).
func TestSameDescentAsPlain(t *testing.T) {
	for _, name := range []string{"mlp", "mlp32", "cnn_bn", "cnn_fold", "resnet", "transformer", "gconv", "attn_mha", "attn_gqa"} {
		a, b, ga := testPair(t, name)
		start := StartAuto
		if len(ga.BlockSets) > 0 {
			start = StartIdentity
		}
		for seed := uint64(0); seed < 3; seed++ {
			run := func(fast bool, depth int, delay time.Duration) *Result {
				defer func(ahead, skip bool, depth int, delay time.Duration) {
					lookAhead, skipCurrentSites, maxAhead, aheadCostDelay = ahead, skip, depth, delay
				}(lookAhead, skipCurrentSites, maxAhead, aheadCostDelay)
				lookAhead, skipCurrentSites, maxAhead, aheadCostDelay = fast, fast, depth, delay
				res, err := Weights(a, b, ga, Options{Seed: seed, Start: start})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			plain := run(false, maxAhead, 0)
			// The default depth and others: how many solves are in flight
			// changes which are stale, never the descent. Costs computed
			// ahead and held back make the descent reach their groups'
			// neighbours before they are done, where it must wait for them
			// (under -race, a missing wait is reported).
			for _, c := range []struct {
				depth int
				delay time.Duration
			}{{maxAhead, 0}, {1, 0}, {2, 0}, {8, 0}, {maxAhead, time.Millisecond}} {
				ahead := run(true, c.depth, c.delay)
				name := fmt.Sprintf("%s depth %d, costs held back %v", name, c.depth, c.delay)
				if len(plain.Sweeps) != len(ahead.Sweeps) {
					t.Fatalf("%s seed %d: %d sweeps with look-ahead, %d without", name, seed, len(ahead.Sweeps), len(plain.Sweeps))
				}
				for i := range plain.Sweeps {
					if plain.Sweeps[i].Objective != ahead.Sweeps[i].Objective {
						t.Fatalf("%s seed %d sweep %d: objective %v with look-ahead, %v without", name, seed, i+1, ahead.Sweeps[i].Objective, plain.Sweeps[i].Objective)
					}
				}
				for g := range plain.Perms {
					if !slices.Equal(plain.Perms[g], ahead.Perms[g]) {
						t.Fatalf("%s seed %d: group %d differs with look-ahead", name, seed, g)
					}
				}
			}
		}
	}
}
