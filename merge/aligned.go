package merge

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// Aligned applies perms[i] to a copy of models[i] and returns the
// weighted average of the results (see Average). a is the analysis shared
// by the models' architecture; the inputs are not changed.
func Aligned(models []*onnx.Model, a *graph.Analysis, perms []permute.Perms, weights []float64) (*onnx.Model, error) {
	if len(perms) != len(models) {
		return nil, fmt.Errorf("%d permutations for %d models", len(perms), len(models))
	}
	if err := sitelayout.CheckFit(a, models...); err != nil {
		return nil, err
	}
	aligned := make([]*onnx.Model, len(models))
	for i, m := range models {
		aligned[i] = m.Clone()
		if err := permute.Apply(aligned[i], a, perms[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	return Average(aligned, weights)
}

// Many is the paper's Many: starting from the identity, each
// round visits the models in random order and re-aligns each one to the
// mean of all the others (as currently aligned), until a round changes no
// permutation (or opts.MaxIter rounds). It returns one permutation per model.
func Many(models []*onnx.Model, a *graph.Analysis, opts match.Options, progress func(round, changed int)) ([]permute.Perms, error) {
	if err := sitelayout.CheckFit(a, models...); err != nil {
		return nil, err
	}
	perms := make([]permute.Perms, len(models))
	for i := range perms {
		perms[i] = permute.Identity(a)
	}
	maxRounds := opts.MaxIter
	if maxRounds <= 0 {
		maxRounds = 100
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6a09e667f3bcc909))
	for round := 1; round <= maxRounds; round++ {
		changed := 0
		for _, i := range rng.Perm(len(models)) {
			if err := sitelayout.ContextErr(opts.Context); err != nil {
				return nil, err
			}
			var others []*onnx.Model
			var otherPerms []permute.Perms
			for j := range models {
				if j != i {
					others = append(others, models[j])
					otherPerms = append(otherPerms, perms[j])
				}
			}
			mean, err := Aligned(others, a, otherPerms, nil)
			if err != nil {
				return nil, err
			}
			o := opts
			o.Init = perms[i]
			o.Progress = nil
			res, err := match.Weights(mean, models[i], a, o)
			if err != nil {
				return nil, fmt.Errorf("aligning %s to the mean of the others: %w", models[i].Name, err)
			}
			if !samePerms(res.Perms, perms[i]) {
				perms[i] = res.Perms
				changed++
			}
		}
		if progress != nil {
			progress(round, changed)
		}
		if changed == 0 {
			break
		}
	}
	return perms, nil
}

func samePerms(a, b permute.Perms) bool {
	for g := range a {
		if !slices.Equal(a[g], b[g]) {
			return false
		}
	}
	return true
}
