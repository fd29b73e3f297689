package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/atomicfile"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// alignReport is what `align --report` writes.
type alignReport struct {
	A               string          `json:"a"`
	B               string          `json:"b"`
	Out             string          `json:"out"`
	Method          string          `json:"method"`
	Seed            uint64          `json:"seed"`
	Groups          []groupReport   `json:"groups"`
	Sweeps          []permute.Sweep `json:"sweeps"`
	ObjectiveBefore float64         `json:"objective_before"`
	ObjectiveAfter  float64         `json:"objective_after"`
	Seconds         float64         `json:"seconds"`
	Perms           permute.Perms   `json:"perms"`
}

type groupReport struct {
	ID    int `json:"id"`
	Size  int `json:"size"`
	Moved int `json:"moved"` // units not mapped to themselves
}

// loadPair loads two models and checks that they share an architecture.
func loadPair(pathA, pathB string) (*onnx.Model, *onnx.Model, *graph.Analysis, error) {
	ma, ga, err := loadAnalyzed(pathA)
	if err != nil {
		return nil, nil, nil, err
	}
	mb, gb, err := loadAnalyzed(pathB)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := permute.SameArchitecture(ma, mb, ga, gb); err != nil {
		return nil, nil, nil, fmt.Errorf("models differ: %w", err)
	}
	return ma, mb, ga, nil
}

// alignOptions says how alignModels aligns.
type alignOptions struct {
	method  string        // weight, activation or hybrid
	fit     *eval.Dataset // data for activation and hybrid
	batch   int
	seed    uint64
	maxIter int
	quiet   bool
}

// alignModels loads a and b and finds the permutations of b that align it
// to a. For --method activation the result has no sweeps.
func alignModels(c *cmdContext, pathA, pathB string, o alignOptions) (*onnx.Model, *onnx.Model, *graph.Analysis, *permute.MatchResult, error) {
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
func alignLoaded(c *cmdContext, ma, mb *onnx.Model, ga *graph.Analysis, pathA, pathB string, o alignOptions) (*permute.MatchResult, error) {
	opts := permute.MatchOptions{Seed: o.seed, MaxIter: o.maxIter}
	if !o.quiet {
		opts.Progress = func(s permute.Sweep) {
			fmt.Fprintf(c.stderr, "sweep %d: objective %.6g, %d groups changed (%.2fs)\n", s.N, s.Objective, s.Changed, s.Elapsed.Seconds())
		}
	}
	switch o.method {
	case "weight":
	case "activation", "hybrid":
		if o.fit == nil {
			return nil, usagef("--method %s needs data", o.method)
		}
		perms, err := permute.ActivationMatch(ma, mb, ga, o.fit, permute.DataOptions{Batch: o.batch})
		if err != nil {
			return nil, fmt.Errorf("aligning %s to %s: %w", pathB, pathA, err)
		}
		if o.method == "activation" {
			return &permute.MatchResult{Perms: perms}, nil
		}
		opts.Init = perms
	default:
		return nil, usagef("unknown --method %q (weight, activation or hybrid)", o.method)
	}
	res, err := permute.WeightMatch(ma, mb, ga, opts)
	if err != nil {
		return nil, fmt.Errorf("aligning %s to %s: %w", pathB, pathA, err)
	}
	return res, nil
}

// loadAlignData checks --method and --data together and loads the data
// that a data-driven method needs: --data without one is a usage error,
// not a silent no-op.
func loadAlignData(cmd, method, data string) (*eval.Dataset, error) {
	switch method {
	case "weight":
		if data != "" {
			return nil, usagef("%s: --data is only used by --method activation or hybrid", cmd)
		}
		return nil, nil
	case "activation", "hybrid":
		if data == "" {
			return nil, usagef("%s: --method %s needs --data", cmd, method)
		}
		return eval.Load(data, "")
	}
	return nil, usagef("%s: unknown --method %q (weight, activation or hybrid)", cmd, method)
}

func runAlign(c *cmdContext, args []string) error {
	fs := newFlags(c, "align", "a.onnx b.onnx -o b_aligned.onnx [--seed N] [--max-iter K] [--report r.json]",
		"Permute b's hidden units to match a's (weight matching). The output computes what b computes.")
	out := fs.String("o", "", "output model `path` (required)")
	seed := fs.Uint64("seed", 0, "seed for the order in which groups are visited")
	maxIter := fs.Int("max-iter", 100, "maximum number of sweeps")
	report := fs.String("report", "", "write a JSON report (groups, sweeps, objective, permutations) to this `path`")
	quiet := fs.Bool("q", false, "no progress on stderr")
	force := fs.Bool("force", false, "allow the output to replace an input file")
	method := fs.String("method", "weight", "weight (weight matching), activation (activation matching on --data) or hybrid (activation matching as the start of weight matching)")
	data := fs.String("data", "", "inputs (.npy) for --method activation or hybrid")
	batch := fs.Int("batch", 256, "batch size for passes over --data")
	verify := fs.Bool("verify", false, "run b and the output with the built-in interpreter and fail if their outputs differ")
	verifyData := fs.String("verify-data", "", "with --verify: inputs (.npy) to compare on instead of random ones")
	pos, err := parseFlags(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if err := checkOutput(*out, *force, pos...); err != nil {
		return err
	}
	start := time.Now()
	o := alignOptions{method: *method, batch: *batch, seed: *seed, maxIter: *maxIter, quiet: *quiet}
	if o.fit, err = loadAlignData("align", *method, *data); err != nil {
		return err
	}
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
	if err := mb.Save(*out); err != nil {
		return err
	}
	if !*quiet {
		if *method == "activation" {
			fmt.Fprintf(c.stderr, "aligned %s to %s by activation matching, wrote %s\n", pos[1], pos[0], *out)
		} else {
			fmt.Fprintf(c.stderr, "aligned %s to %s: objective %.6g -> %.6g in %d sweeps, wrote %s\n",
				pos[1], pos[0], res.ObjectiveBefore, res.ObjectiveAfter, len(res.Sweeps), *out)
		}
	}
	if *report != "" {
		r := alignReport{A: pos[0], B: pos[1], Out: *out, Method: *method, Seed: *seed, Sweeps: res.Sweeps,
			ObjectiveBefore: res.ObjectiveBefore, ObjectiveAfter: res.ObjectiveAfter,
			Seconds: time.Since(start).Seconds(), Perms: res.Perms}
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

func writeJSON(path string, v any) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}

// parseWeights parses "w1,w2,...".
func parseWeights(s string, n int) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, usagef("--weights has %d values for %d models", len(parts), n)
	}
	w := make([]float64, n)
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 {
			return nil, usagef("--weights: %q is not a non-negative number", p)
		}
		w[i] = v
	}
	return w, nil
}
