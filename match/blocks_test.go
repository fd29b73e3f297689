package match

import (
	"math"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// TestSharedWithinDescent runs the descent from the identity on the
// grouped-conv model against a permuted copy, so that both parts of the
// block step move: the objective the descent keeps (the sum of the exact
// gains it accepted, Within weights included) must be the result's, no
// sweep may lower it, and at the end no shared within-block permutation of
// a small group does better (enumerated).
func TestSharedWithinDescent(t *testing.T) {
	a, ga := testkit.LoadAnalyze(t, "../testmodels/gconv.onnx")
	shared := 0
	for _, g := range ga.Groups {
		if g.SharedWithin {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("gconv.onnx has no group whose blocks share their within-block permutation")
	}
	for _, seed := range []uint64{1, 2, 3} {
		b := a.Clone()
		if err := permute.Apply(b, ga, permute.Random(ga, seed)); err != nil {
			t.Fatal(err)
		}
		res, err := Weights(a, b, ga, Options{Seed: seed, Start: StartIdentity})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(res.Sweeps); i++ {
			if res.Sweeps[i].Objective < res.Sweeps[i-1].Objective {
				t.Fatalf("seed %d: objective decreased: %v", seed, res.Sweeps)
			}
		}
		kept := res.Sweeps[len(res.Sweeps)-1].Objective
		if math.Abs(kept-res.ObjectiveAfter) > 1e-9*math.Abs(res.ObjectiveAfter) {
			t.Errorf("seed %d: objective kept by the descent %v, of its result %v", seed, kept, res.ObjectiveAfter)
		}
		mt, err := newMatcher(a, b, ga)
		if err != nil {
			t.Fatal(err)
		}
		for g, grp := range ga.Groups {
			d := grp.Size / max(grp.Blocks, 1)
			if !grp.SharedWithin || d > 6 {
				continue
			}
			sigma, _ := sitelayout.BlockSigma(res.Perms[g], d)
			p := clonePerms(res.Perms)
			for _, tau := range testkit.AllPerms(d) {
				p[g] = sitelayout.BlockPerm(sigma, sitelayout.SameBlocks(grp.Blocks, tau), d)
				if o := mt.objective(p); o > res.ObjectiveAfter+1e-9*math.Abs(res.ObjectiveAfter) {
					t.Errorf("seed %d, group %d: within-block permutation %v scores %v > %v", seed, g, tau, o, res.ObjectiveAfter)
					break
				}
			}
		}
		t.Logf("seed %d: %d sweeps, objective %.4f -> %.4f", seed, len(res.Sweeps), res.ObjectiveBefore, res.ObjectiveAfter)
	}
}
