package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

func runMerge(c *cmdContext, args []string) error {
	fs := newFlags(c, "merge", "m1.onnx m2.onnx ... -o out.onnx [--method weight|activation|hybrid --data x.npy] [--weights w1,w2,...] [--ref m1.onnx | --mergemany] [--lambda L] [--repair x.npy] [--reset-bn x.npy]",
		"Align every model to a reference (as align does) and write their weighted average: a model soup. With two models, --lambda L is interpolation (1-L)·m1 + L·m2.")
	out := fs.String("o", "", "output model `path` (required)")
	weightsFlag := fs.String("weights", "", "comma-separated averaging weights, one per model (default: equal)")
	ref := fs.String("ref", "", "reference model every other model is aligned to (default: the first)")
	mergeMany := fs.Bool("mergemany", false, "the paper's MergeMany: align each model to the mean of the others until nothing changes")
	lambda := fs.Float64("lambda", -1, "with two models: weight of the second (interpolation)")
	noAlign := fs.Bool("no-align", false, "average without aligning (naive merge)")
	seed := fs.Uint64("seed", 0, "seed for the order of groups and models")
	maxIter := fs.Int("max-iter", 100, "maximum number of sweeps per alignment")
	resetBN := fs.String("reset-bn", "", "recompute BatchNorm statistics of the merged model on these inputs (.npy)")
	repair := fs.String("repair", "", "REPAIR the merged model on these inputs (.npy): restore each channel's interpolated mean and std (two models only)")
	method := fs.String("method", "weight", "alignment, as in align: weight (weight matching), activation (activation matching on --data) or hybrid (activation matching as the start of weight matching)")
	data := fs.String("data", "", "inputs (.npy) for --method activation or hybrid")
	batch := fs.Int("batch", 256, "batch size for --data, --reset-bn and --repair")
	quiet := fs.Bool("q", false, "no progress on stderr")
	force := fs.Bool("force", false, "allow the output to replace an input file")
	pos, err := parseFlags(fs, args, 2, -1)
	if err != nil {
		return err
	}
	if err := checkOutput(*out, *force, pos...); err != nil {
		return err
	}
	weights, err := parseWeights(*weightsFlag, len(pos))
	if err != nil {
		return err
	}
	if *lambda >= 0 {
		if len(pos) != 2 || weights != nil {
			return usagef("--lambda needs exactly two models and no --weights")
		}
		if *lambda > 1 {
			return usagef("--lambda must be in [0, 1]")
		}
		weights = []float64{1 - *lambda, *lambda}
	}
	if *ref != "" {
		// Put the reference first, keeping weights with their models.
		k := -1
		for i, p := range pos {
			if p == *ref || filepath.Clean(p) == filepath.Clean(*ref) {
				k = i
			}
		}
		if k < 0 {
			return usagef("--ref %s is not one of the models", *ref)
		}
		pos[0], pos[k] = pos[k], pos[0]
		if weights != nil {
			weights[0], weights[k] = weights[k], weights[0]
		}
	}
	if *noAlign && (*method != "weight" || *data != "") {
		return usagef("merge: --no-align takes no --method or --data")
	}
	if *mergeMany && *method != "weight" {
		return usagef("merge: --mergemany aligns by weight matching only")
	}
	fit, err := loadAlignData("merge", *method, *data)
	if err != nil {
		return err
	}
	models := make([]*onnx.Model, len(pos))
	analyses := make([]*graph.Analysis, len(pos))
	for i, p := range pos {
		if models[i], analyses[i], err = loadAnalyzed(p); err != nil {
			return err
		}
		if i > 0 {
			if err := permute.SameArchitecture(models[0], models[i], analyses[0], analyses[i]); err != nil {
				return fmt.Errorf("cannot merge: %w", err)
			}
		}
	}
	if *resetBN != "" && !hasOp(models[0], "BatchNormalization") {
		return usagef("merge: --reset-bn: %s has no BatchNormalization", pos[0])
	}
	opts := permute.MatchOptions{Seed: *seed, MaxIter: *maxIter}
	var perms []permute.Perms
	switch {
	case *noAlign:
		for range models {
			perms = append(perms, permute.Identity(analyses[0]))
		}
	case *mergeMany:
		progress := func(round, changed int) {
			if !*quiet {
				fmt.Fprintf(c.stderr, "mergemany round %d: %d models changed\n", round, changed)
			}
		}
		perms, err = permute.MergeMany(models, analyses[0], opts, progress)
		if err != nil {
			return err
		}
	default:
		perms = append(perms, permute.Identity(analyses[0]))
		o := alignOptions{method: *method, fit: fit, batch: *batch, seed: *seed, maxIter: *maxIter, quiet: true}
		for i := 1; i < len(models); i++ {
			res, err := alignLoaded(c, models[0], models[i], analyses[0], pos[0], pos[i], o)
			if err != nil {
				return err
			}
			if !*quiet && *method == "activation" {
				fmt.Fprintf(c.stderr, "aligned %s to %s by activation matching\n", pos[i], pos[0])
			} else if !*quiet {
				fmt.Fprintf(c.stderr, "aligned %s to %s: objective %.6g -> %.6g in %d sweeps\n", pos[i], pos[0], res.ObjectiveBefore, res.ObjectiveAfter, len(res.Sweeps))
			}
			perms = append(perms, res.Perms)
		}
	}
	merged, err := permute.MergeAligned(models, analyses[0], perms, weights)
	if err != nil {
		return err
	}
	dopts := permute.DataOptions{Batch: *batch}
	if *repair != "" {
		if len(models) != 2 {
			return usagef("merge: --repair works on two models")
		}
		fit, err := eval.Load(*repair, "")
		if err != nil {
			return err
		}
		a, b := models[0].Clone(), models[1].Clone()
		if err := permute.Apply(a, analyses[0], perms[0]); err != nil {
			return err
		}
		if err := permute.Apply(b, analyses[0], perms[1]); err != nil {
			return err
		}
		rep, err := permute.PrepareRepair(a, b, analyses[0], fit, dopts)
		if err != nil {
			return err
		}
		lambda := 0.5
		if weights != nil {
			lambda = weights[1] / (weights[0] + weights[1])
		}
		if err := rep.Apply(merged, lambda); err != nil {
			return err
		}
	}
	if *resetBN != "" {
		fit, err := eval.Load(*resetBN, "")
		if err != nil {
			return err
		}
		if err := permute.ResetBatchNorm(merged, fit, dopts); err != nil {
			return err
		}
	}
	if err := merged.Save(*out); err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(c.stderr, "merged %s into %s\n", strings.Join(pos, ", "), *out)
	}
	return nil
}

func runInterp(c *cmdContext, args []string) error {
	fs := newFlags(c, "interp", "a.onnx b.onnx -o prefix [--steps 11] [--no-align]",
		"Write the interpolation path between a and b aligned to a: prefix_00.onnx (a) ... prefix_NN.onnx (aligned b).")
	out := fs.String("o", "", "output `prefix`; files are prefix_00.onnx ... (required)")
	steps := fs.Int("steps", 11, "number of models on the path, endpoints included (at least 2)")
	noAlign := fs.Bool("no-align", false, "interpolate without aligning (the naive path)")
	seed := fs.Uint64("seed", 0, "seed for the order in which groups are visited")
	maxIter := fs.Int("max-iter", 100, "maximum number of sweeps")
	quiet := fs.Bool("q", false, "no progress on stderr")
	pos, err := parseFlags(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("missing -o output prefix")
	}
	if *steps < 2 || *steps > 1001 {
		return usagef("--steps must be between 2 and 1001")
	}
	var ma, mb *onnx.Model
	var ga *graph.Analysis
	perms := []permute.Perms{}
	if *noAlign {
		if ma, mb, ga, err = loadPair(pos[0], pos[1]); err != nil {
			return fmt.Errorf("cannot interpolate: %w", err)
		}
		perms = append(perms, permute.Identity(ga), permute.Identity(ga))
	} else {
		var res *permute.MatchResult
		if ma, mb, ga, res, err = alignModels(c, pos[0], pos[1], alignOptions{method: "weight", seed: *seed, maxIter: *maxIter, quiet: *quiet}); err != nil {
			return err
		}
		perms = append(perms, permute.Identity(ga), res.Perms)
	}
	digits := len(fmt.Sprint(*steps - 1))
	for i := 0; i < *steps; i++ {
		l := float64(i) / float64(*steps-1)
		m, err := permute.MergeAligned([]*onnx.Model{ma, mb}, ga, perms, []float64{1 - l, l})
		if err != nil {
			return err
		}
		path := fmt.Sprintf("%s_%0*d.onnx", *out, digits, i)
		if err := checkOutput(path, false, pos...); err != nil {
			return err
		}
		if err := m.Save(path); err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintf(c.stderr, "lambda %.3f -> %s\n", l, path)
		}
	}
	return nil
}

// hasOp reports whether m has a node of type op.
func hasOp(m *onnx.Model, op string) bool {
	for _, n := range m.Proto.GetGraph().GetNode() {
		if n.GetOpType() == op {
			return true
		}
	}
	return false
}
