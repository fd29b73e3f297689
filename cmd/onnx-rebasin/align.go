package main

import (
	"fmt"
	"runtime"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// loadPair loads two models and checks that they share an architecture.
func loadPair(pathA, pathB string) (*onnx.Model, *onnx.Model, *graph.Analysis, error) {
	// b is read, analysed and checked on a goroutine while a is: the two
	// overlap their file reads and keep both cores busy. a's error, if
	// any, is the one reported, as when they were read in turn.
	var (
		mb     *onnx.Model
		gb     *graph.Analysis
		errB   error
		loaded = make(chan struct{})
	)
	go func() {
		defer close(loaded)
		if mb, gb, errB = loadAnalyzed(pathB); errB == nil {
			errB = checkFiniteWeights(mb, gb)
		}
	}()
	ma, ga, err := loadAnalyzed(pathA)
	if err == nil {
		err = checkFiniteWeights(ma, ga)
	}
	<-loaded
	if err := firstErr(err, errB); err != nil {
		return nil, nil, nil, err
	}
	if err := permute.SameArchitecture(ma, mb, ga, gb); err != nil {
		return nil, nil, nil, fmt.Errorf("models differ: %w", err)
	}
	return ma, mb, ga, nil
}

// alignOptions says how alignModels aligns.
type alignOptions struct {
	method   string        // weight, activation or hybrid (checked by checkMethod)
	fit      *eval.Dataset // data for activation and hybrid
	batch    int
	seed     uint64
	maxIter  int
	restarts int    // match.Options.Restarts
	start    string // --start: auto, signature or identity (match.Options.Start)
	quiet    bool
}

// alignModels loads a and b and finds the permutations of b that align it
// to a. For --method activation the result has no sweeps.
func alignModels(c *cmdContext, pathA, pathB string, o alignOptions) (*onnx.Model, *onnx.Model, *graph.Analysis, *match.Result, error) {
	ma, mb, ga, err := loadPair(pathA, pathB)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("cannot align: %w", err)
	}
	res, err := alignLoaded(c, ma, mb, ga, pathA, pathB, o)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return ma, mb, ga, res, nil
}

// alignLoaded finds the permutations of mb (read from pathB) that align it
// to ma (read from pathA); ga is ma's analysis.
func alignLoaded(c *cmdContext, ma, mb *onnx.Model, ga *graph.Analysis, pathA, pathB string, o alignOptions) (*match.Result, error) {
	opts := match.Options{Seed: o.seed, MaxIter: o.maxIter, Restarts: o.restarts, Start: startOf(o.start), Progress: c.sweepLog(o.quiet), Context: c.ctx}
	if o.method == "activation" || o.method == "hybrid" {
		if o.fit == nil {
			return nil, usagef("--method %s needs --data", o.method)
		}
		perms, err := activation.Match(ma, mb, ga, o.fit, activation.Options{Batch: o.batch, Context: c.ctx, Progress: c.progressBar(o.quiet, "activation matching")})
		if err != nil {
			return nil, fmt.Errorf("aligning %s to %s: %w", pathB, pathA, err)
		}
		if o.method == "activation" {
			return &match.Result{Perms: perms}, nil
		}
		opts.Init = perms
	}
	res, err := match.Weights(ma, mb, ga, opts)
	if err != nil {
		return nil, fmt.Errorf("aligning %s to %s: %w", pathB, pathA, err)
	}
	if !o.quiet && len(res.Descents) > 1 {
		fmt.Fprintf(c.stderr, "descents: final objectives %.6g, kept the highest\n", res.Descents)
	}
	return res, nil
}

// sweepLog returns a callback that logs each weight-matching sweep on
// stderr (one line each), or nil when quiet.
func (c *cmdContext) sweepLog(quiet bool) func(match.Sweep) {
	if quiet {
		return nil
	}
	return func(s match.Sweep) {
		fmt.Fprintf(c.stderr, "sweep %d: objective %.6g, %s changed (%.2fs)\n", s.N, s.Objective, plural(s.Changed, "group", "groups"), s.Elapsed.Seconds())
	}
}

// startReport is the report's "start": where the first weight-matching
// descent started (signature or identity, --start resolved; the
// activation match for hybrid), "" for activation matching.
func startReport(method string, res *match.Result) string {
	switch method {
	case "activation":
		return ""
	case "hybrid":
		return "activation"
	}
	return res.Start.String()
}

// descents lists the final objective of every weight-matching descent of
// res, the first being the one without restarts: none for activation
// matching, one without --restarts.
func descents(res *match.Result, method string) []float64 {
	switch {
	case method == "activation":
		return []float64{}
	case res.Descents != nil:
		return res.Descents
	}
	return []float64{res.ObjectiveAfter}
}

func runAlign(c *cmdContext, args []string) error {
	fs := newFlags(c, "align", "a.onnx b.onnx -o b_aligned.onnx [--seed N] [--max-iter K] [--start S] [--restarts R] [--report r.json]",
		"Permute b's hidden units to match a's (weight matching). The output computes what b computes.")
	out := fs.output("output model `path` (required)")
	seed := fs.seed("the order in which groups are visited")
	maxIter := fs.maxIter()
	restarts := fs.restarts()
	startAt := fs.start()
	report := fs.String("report", "", "write a JSON report (groups, sweeps, objective, permutations) to this `path`")
	quiet := fs.quiet()
	force := fs.force()
	method := fs.method("--data")
	data := fs.String("data", "", "inputs (.npy) for --method activation or hybrid")
	batch := fs.batch()
	verify := fs.Bool("verify", false, "run b and the output with the built-in interpreter and fail if their outputs differ")
	verifyData := fs.String("verify-data", "", "with --verify: inputs (.npy) to compare on instead of random ones")
	pos, err := fs.parse(args, 2, 2)
	if err != nil {
		return err
	}
	if err := checkMethod(*method, *data); err != nil {
		return err
	}
	if *data != "" && *method == "weight" {
		return usagef("align: --data is for --method activation or hybrid")
	}
	if *verifyData != "" && !*verify {
		return usagef("align: --verify-data needs --verify")
	}
	if err := firstErr(checkPositive("max-iter", *maxIter), checkPositive("batch", *batch), checkRestarts(*restarts, *method, false), checkStart(*startAt, flagGiven(fs, "start"), *method, false)); err != nil {
		return err
	}
	paths := files{force: *force}
	paths.read("model", pos...)
	paths.read("--data", *data)
	paths.read("--verify-data", *verifyData)
	if err := checkModelOutput(*out); err != nil {
		return err
	}
	paths.write("-o", *out)
	paths.write("--report", *report)
	if err := paths.check(); err != nil {
		return err
	}
	start := time.Now()
	o := alignOptions{method: *method, batch: *batch, seed: *seed, maxIter: *maxIter, restarts: *restarts, start: *startAt, quiet: *quiet}
	if o.fit, err = loadData(*data, ""); err != nil {
		return err
	}
	defer o.fit.Close()
	_, mb, ga, res, err := alignModels(c, pos[0], pos[1], o)
	if err != nil {
		return err
	}
	// Model a and the matcher's buffers are garbage now: collecting them
	// lets the permuted tensors and the encoded output reuse their memory
	// instead of touching fresh pages (which dominated on large models).
	runtime.GC()
	var origB *onnx.Model
	if *verify {
		origB = mb.Clone()
	}
	if err := permute.Apply(mb, ga, res.Perms); err != nil {
		return fmt.Errorf("%s: %w", pos[1], err)
	}
	if *verify {
		if err := verifySame(origB, mb, *verifyData, *seed); err != nil {
			return err
		}
		if !*quiet {
			fmt.Fprintf(c.stderr, "verified: %s computes what %s computes\n", *out, pos[1])
		}
	}
	if err := mb.SaveContext(c.ctx, *out); err != nil {
		return err
	}
	if !*quiet {
		if *method == "activation" {
			fmt.Fprintf(c.stderr, "aligned %s to %s by activation matching, wrote %s\n", pos[1], pos[0], *out)
		} else {
			fmt.Fprintf(c.stderr, "aligned %s to %s: objective %.6g -> %.6g in %s, wrote %s\n",
				pos[1], pos[0], res.ObjectiveBefore, res.ObjectiveAfter, plural(len(res.Sweeps), "sweep", "sweeps"), *out)
		}
	}
	if *report != "" {
		r := alignReport{A: pos[0], B: pos[1], Out: *out, Method: *method, Seed: *seed, Groups: []groupReport{},
			Sweeps: newSweepsJSON(res.Sweeps), ObjectiveBefore: res.ObjectiveBefore, ObjectiveAfter: res.ObjectiveAfter,
			Start: startReport(*method, res), Restarts: *restarts, Descents: descents(res, *method), ElapsedS: time.Since(start).Seconds(), Perms: res.Perms}
		for i, g := range ga.Groups {
			moved := 0
			for k, j := range res.Perms[i] {
				if k != j {
					moved++
				}
			}
			r.Groups = append(r.Groups, groupReport{g.ID, g.Size, moved})
		}
		if err := writeJSON(*report, r); err != nil {
			return err
		}
	}
	return nil
}
