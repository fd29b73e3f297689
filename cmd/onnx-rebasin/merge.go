package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/merge"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

func runMerge(c *cmdContext, args []string) error {
	fs := newFlags(c, "merge", "m1.onnx m2.onnx ... -o out.onnx [--method weight|activation|hybrid --data x.npy] [--weights w1,w2,...] [--ref m1.onnx | --mergemany | --no-align] [--lambda L] [--repair x.npy] [--reset-bn x.npy]",
		"Align every model to a reference (as align does) and write their weighted average: a model soup. With two models, --lambda L is interpolation (1-L)·m1 + L·m2.")
	out := fs.output("output model `path` (required)")
	weightsFlag := fs.String("weights", "", "comma-separated averaging weights, one per model (default: equal)")
	ref := fs.String("ref", "", "reference model every other model is aligned to (default: the first)")
	mergeMany := fs.Bool("mergemany", false, "the paper's MergeMany: align each model to the mean of the others until nothing changes")
	lambda := fs.Float64("lambda", 0.5, "with two models: weight of the second, in [0, 1] (interpolation)")
	noAlign := fs.Bool("no-align", false, "average without aligning (naive merge)")
	seed := fs.seed("the order of groups and models")
	maxIter := fs.maxIter()
	restarts := fs.restarts()
	startAt := fs.start()
	resetBN := fs.resetBN("the merged model")
	repair := fs.repair("the merged model (two models only)")
	method := fs.method("--data")
	data := fs.String("data", "", "inputs (.npy) for --method activation or hybrid")
	batch := fs.batch()
	quiet := fs.quiet()
	force := fs.force()
	pos, err := fs.parse(args, 2, -1)
	if err != nil {
		return err
	}
	weights, err := parseWeights(*weightsFlag, len(pos))
	if err != nil {
		return err
	}
	if flagGiven(fs, "lambda") {
		switch {
		case len(pos) != 2:
			return usagef("merge: --lambda needs exactly two models, got %d", len(pos))
		case weights != nil:
			return usagef("merge: --lambda and --weights exclude each other")
		case !(*lambda >= 0 && *lambda <= 1): // also NaN
			return usagef("merge: --lambda must be in [0, 1], got %v", *lambda)
		}
		weights = []float64{1 - *lambda, *lambda}
	}
	if err := exclusive("merge", fs, "mergemany", "no-align", "ref"); err != nil {
		return err
	}
	if *repair != "" && len(pos) != 2 {
		return usagef("merge: --repair works on two models, got %d", len(pos))
	}
	if err := firstErr(checkPositive("max-iter", *maxIter), checkPositive("batch", *batch), checkRestarts(*restarts, *method, *noAlign), checkStart(*startAt, flagGiven(fs, "start"), *method, *noAlign)); err != nil {
		return err
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
			return usagef("merge: --ref %s is not one of the models", *ref)
		}
		pos[0], pos[k] = pos[k], pos[0]
		if weights != nil {
			weights[0], weights[k] = weights[k], weights[0]
		}
	}
	if err := checkMethod(*method, *data); err != nil {
		return err
	}
	if *data != "" && *method == "weight" {
		return usagef("merge: --data is for --method activation or hybrid")
	}
	if *noAlign && *method != "weight" {
		return usagef("merge: --no-align takes no --method")
	}
	if *mergeMany && *method != "weight" {
		return usagef("merge: --mergemany aligns by weight matching only")
	}
	paths := files{force: *force}
	paths.read("model", pos...)
	paths.read("--data", *data)
	paths.read("--reset-bn", *resetBN)
	paths.read("--repair", *repair)
	if err := checkModelOutput(*out); err != nil {
		return err
	}
	paths.write("-o", *out)
	if err := paths.check(); err != nil {
		return err
	}
	fit, err := loadData(*data, "")
	if err != nil {
		return err
	}
	defer fit.Close()
	bnData, repairData, err := loadFixData(*resetBN, *repair)
	if err != nil {
		return err
	}
	defer bnData.Close()
	defer repairData.Close()
	models, analyses, err := loadForMerge(pos, "cannot merge")
	if err != nil {
		return err
	}
	if bnData != nil && !hasOp(models[0], "BatchNormalization") {
		return usagef("merge: --reset-bn: %s has no BatchNormalization", pos[0])
	}
	opts := match.Options{Seed: *seed, MaxIter: *maxIter, Restarts: *restarts, Start: startOf(*startAt), Context: c.ctx}
	var perms []permute.Perms
	switch {
	case *noAlign:
		for range models {
			perms = append(perms, permute.Identity(analyses[0]))
		}
	case *mergeMany:
		progress := func(round, changed int) {
			if !*quiet {
				fmt.Fprintf(c.stderr, "mergemany round %d: %s changed\n", round, plural(changed, "model", "models"))
			}
		}
		perms, err = merge.Many(models, analyses[0], opts, progress)
		if err != nil {
			return err
		}
	default:
		perms = append(perms, permute.Identity(analyses[0]))
		o := alignOptions{method: *method, fit: fit, batch: *batch, seed: *seed, maxIter: *maxIter, restarts: *restarts, start: *startAt, quiet: true}
		for i := 1; i < len(models); i++ {
			res, err := alignLoaded(c, models[0], models[i], analyses[0], pos[0], pos[i], o)
			if err != nil {
				return err
			}
			if !*quiet && *method == "activation" {
				fmt.Fprintf(c.stderr, "aligned %s to %s by activation matching\n", pos[i], pos[0])
			} else if !*quiet {
				fmt.Fprintf(c.stderr, "aligned %s to %s: objective %.6g -> %.6g in %s\n", pos[i], pos[0],
					res.ObjectiveBefore, res.ObjectiveAfter, plural(len(res.Sweeps), "sweep", "sweeps"))
			}
			perms = append(perms, res.Perms)
		}
	}
	merged, err := merge.Aligned(models, analyses[0], perms, weights)
	if err != nil {
		return err
	}
	if repairData != nil {
		a, b := models[0].Clone(), models[1].Clone()
		if err := permute.Apply(a, analyses[0], perms[0]); err != nil {
			return err
		}
		if err := permute.Apply(b, analyses[0], perms[1]); err != nil {
			return err
		}
		rep, err := activation.PrepareRepair(a, b, analyses[0], repairData, activation.Options{Batch: *batch, Context: c.ctx, Progress: c.progressBars(*quiet, "REPAIR: statistics of both models", "REPAIR: merged model")})
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
	if bnData != nil {
		if err := activation.ResetBatchNorm(merged, bnData, activation.Options{Batch: *batch, Context: c.ctx, Progress: c.progressBar(*quiet, "BN reset")}); err != nil {
			return err
		}
	}
	if err := merged.SaveContext(c.ctx, *out); err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(c.stderr, "merged %s into %s\n", strings.Join(pos, ", "), *out)
		if !*noAlign && bnData == nil && repairData == nil && hasOp(models[0], "BatchNormalization") {
			// Models trained apart and aligned: their averaged running
			// statistics describe neither model's activations in the merge,
			// which can leave it near chance (the BatchNorm ResNet test pair:
			// 0.097 without, 0.30 with a reset; 0.686 with activation
			// matching and REPAIR).
			fmt.Fprintf(c.stderr, "note: %s has BatchNormalization, whose averaged running statistics may not fit the merged weights: --reset-bn x.npy recomputes them on data, --repair x.npy corrects every layer\n", pos[0])
		}
	}
	return nil
}

// exclusive fails if more than one of the named flags was given.
func exclusive(cmd string, fs *flags, names ...string) error {
	var given []string
	for _, n := range names {
		if flagGiven(fs, n) {
			given = append(given, "--"+n)
		}
	}
	if len(given) > 1 {
		return usagef("%s: %s exclude each other", cmd, strings.Join(given, " and "))
	}
	return nil
}

// loadForMerge loads and analyses models that are to be averaged: they
// must share the first one's architecture and have finite weights.
func loadForMerge(paths []string, what string) ([]*onnx.Model, []*graph.Analysis, error) {
	models := make([]*onnx.Model, len(paths))
	analyses := make([]*graph.Analysis, len(paths))
	for i, p := range paths {
		var err error
		if models[i], analyses[i], err = loadAnalyzed(p); err != nil {
			return nil, nil, err
		}
		if err := checkFiniteWeights(models[i], analyses[i]); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		if i > 0 {
			if err := permute.SameArchitecture(models[0], models[i], analyses[0], analyses[i]); err != nil {
				return nil, nil, fmt.Errorf("%s: models differ: %w", what, err)
			}
		}
	}
	return models, analyses, nil
}

func runInterp(c *cmdContext, args []string) error {
	fs := newFlags(c, "interp", "a.onnx b.onnx -o prefix [--steps 11] [--no-align]",
		"Write the interpolation path between a and b aligned to a: prefix_00.onnx (a) ... prefix_NN.onnx (aligned b). "+
			"A .onnx ending of the prefix is dropped; a prefix that is a folder (or ends in /) gives folder/interp_00.onnx .... "+
			"Either every file is written or none.")
	out := fs.output("output `prefix` (required)")
	steps := fs.Int("steps", 11, "number of models on the path, endpoints included (2 to 1001)")
	noAlign := fs.Bool("no-align", false, "interpolate without aligning (the naive path)")
	seed := fs.seed("the order in which groups are visited")
	maxIter := fs.maxIter()
	restarts := fs.restarts()
	startAt := fs.start()
	quiet := fs.quiet()
	force := fs.force()
	pos, err := fs.parse(args, 2, 2)
	if err != nil {
		return err
	}
	if *out == "" {
		return usagef("missing -o output prefix")
	}
	if err := firstErr(checkRange("steps", *steps, 2, 1001), checkPositive("max-iter", *maxIter), checkRestarts(*restarts, "weight", *noAlign), checkStart(*startAt, flagGiven(fs, "start"), "weight", *noAlign)); err != nil {
		return err
	}
	stepPaths := interpPaths(*out, *steps)
	paths := files{force: *force}
	paths.read("model", pos...)
	paths.write("-o", stepPaths...)
	if err := paths.check(); err != nil {
		return err
	}
	models, analyses, err := loadForMerge(pos, "cannot interpolate")
	if err != nil {
		return err
	}
	ga := analyses[0]
	perms := []permute.Perms{permute.Identity(ga), permute.Identity(ga)}
	if !*noAlign {
		res, err := match.Weights(models[0], models[1], ga, match.Options{Seed: *seed, MaxIter: *maxIter, Restarts: *restarts, Start: startOf(*startAt), Progress: c.sweepLog(*quiet), Context: c.ctx})
		if err != nil {
			return fmt.Errorf("aligning %s to %s: %w", pos[1], pos[0], err)
		}
		if !*quiet {
			fmt.Fprintf(c.stderr, "aligned %s to %s: objective %.6g -> %.6g in %s\n", pos[1], pos[0],
				res.ObjectiveBefore, res.ObjectiveAfter, plural(len(res.Sweeps), "sweep", "sweeps"))
		}
		perms[1] = res.Perms
	}
	err = writeAll(stepPaths, func(i int, path string) error {
		l := float64(i) / float64(*steps-1)
		m, err := merge.Aligned(models, ga, perms, []float64{1 - l, l})
		if err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintf(c.stderr, "lambda %.3f: %s\n", l, filepath.Base(stepPaths[i]))
		}
		return m.SaveContext(c.ctx, path)
	})
	if err == nil && !*quiet {
		fmt.Fprintf(c.stderr, "wrote %s to %s\n", plural(len(stepPaths), "model", "models"), filepath.Dir(stepPaths[0]))
	}
	return err
}

// interpPaths names the steps of an interpolation path written to -o out.
func interpPaths(out string, steps int) []string {
	prefix := strings.TrimSuffix(out, ".onnx")
	if fi, err := os.Stat(out); (err == nil && fi.IsDir()) || strings.HasSuffix(out, string(filepath.Separator)) || strings.HasSuffix(out, "/") {
		prefix = filepath.Join(out, "interp")
	}
	digits := len(fmt.Sprint(steps - 1))
	paths := make([]string, steps)
	for i := range paths {
		paths[i] = fmt.Sprintf("%s_%0*d.onnx", prefix, digits, i)
	}
	return paths
}

// writeAll writes a set of files all or nothing: save(i, tmp) writes file
// i to a temporary path in a temporary folder beside the targets (with any
// files that go with it, such as external data named after it), and only
// when every save succeeded are the files renamed into place. On failure
// none of them remains.
func writeAll(targets []string, save func(i int, tmp string) error) (err error) {
	if len(targets) == 0 {
		return nil
	}
	dir := filepath.Dir(targets[0])
	tmpDir, err := os.MkdirTemp(dir, ".onnx-rebasin-tmp-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	for i, t := range targets {
		if filepath.Dir(t) != dir {
			return fmt.Errorf("%s: not in %s", t, dir) // interpPaths never does this
		}
		if err := save(i, filepath.Join(tmpDir, filepath.Base(t))); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(tmpDir)
	if err != nil {
		return err
	}
	var done []string
	for _, e := range entries {
		to := filepath.Join(dir, e.Name())
		if err := os.Rename(filepath.Join(tmpDir, e.Name()), to); err != nil {
			for _, d := range done {
				os.Remove(d)
			}
			return err
		}
		done = append(done, to)
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
