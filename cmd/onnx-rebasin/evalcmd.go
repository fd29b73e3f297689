package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

func runEval(c *cmdContext, args []string) error {
	fs := newFlags(c, "eval", "model.onnx --data x.npy [--labels y.npy] [--batch 256] [--json]",
		"Run the model on a data set with the built-in interpreter: top-1 accuracy and mean cross-entropy (with labels) and throughput. Samples with NaN or infinite inputs are counted and left out.")
	data := fs.String("data", "", "inputs as an .npy `file` (required)")
	labels := fs.String("labels", "", "integer class labels as an .npy `file`")
	batch := fs.batch()
	asJSON := fs.asJSON()
	quiet := fs.quiet()
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *data == "" {
		return usagef("eval: --data is required")
	}
	if err := checkPositive("batch", *batch); err != nil {
		return err
	}
	var paths files
	paths.read("model", pos[0])
	paths.read("--data", *data)
	paths.read("--labels", *labels)
	if err := paths.check(); err != nil {
		return err
	}
	sess, err := loadSession(pos[0])
	if err != nil {
		return err
	}
	ds, err := eval.Load(*data, *labels)
	if err != nil {
		return err
	}
	defer ds.Close()
	bad, err := nonFiniteRows(ds)
	if err != nil {
		return err
	}
	nonFinite := len(bad)
	if nonFinite == ds.N() {
		return fmt.Errorf("%s: every sample has NaN or infinite values", *data)
	}
	ds = finiteRows(ds, bad)
	res, err := eval.Run(sess, ds, *batch, c.progressBar(*quiet, "eval"))
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *asJSON {
		return printJSON(c.stdout, newEvalJSON(pos[0], *data, *labels, res, nonFinite))
	}
	if res.HaveLabels {
		fmt.Fprintf(c.stdout, "accuracy: %.4f\nloss:     %.4f\n", res.Accuracy, res.Loss)
	}
	fmt.Fprintf(c.stdout, "samples:  %d in %.2fs (%.0f/s)\n", res.Samples, res.Seconds, res.PerSecond)
	if nonFinite > 0 {
		fmt.Fprintf(c.stdout, "skipped:  %s with NaN or infinite inputs\n", plural(nonFinite, "sample", "samples"))
	}
	return nil
}

// loadSession loads a model and compiles it for the interpreter.
func loadSession(path string) (*infer.Session, error) {
	m, err := onnx.Load(path)
	if err != nil {
		return nil, err
	}
	sess, err := infer.NewSession(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sess, nil
}

// progressBar returns a callback that redraws a one-line bar on stderr, or
// nil (no progress) when quiet or when stderr is not a terminal: logs get
// no \r frames.
func (c *cmdContext) progressBar(quiet bool, label string) func(done, total int) {
	if quiet || !c.stderrIsTerminal {
		return nil
	}
	w := c.stderr
	return func(done, total int) {
		const width = 30
		filled := width * done / max(total, 1)
		fmt.Fprintf(w, "\r%s [%s%s] %d/%d", label, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), done, total)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

// progressBars is progressBar for consecutive passes over the data, one
// bar each, labelled in turn (the last label for any further pass).
func (c *cmdContext) progressBars(quiet bool, labels ...string) func(done, total int) {
	if quiet || !c.stderrIsTerminal {
		return nil
	}
	pass := 0
	bar := c.progressBar(quiet, labels[0])
	return func(done, total int) {
		bar(done, total)
		if done >= total {
			pass++
			bar = c.progressBar(quiet, labels[min(pass, len(labels)-1)])
		}
	}
}

// maxVerifyElements bounds the random input values that --verify makes
// from a model's declared input dims (64 MiB of float32), so that absurd
// dims give an error, not an out-of-memory crash.
const maxVerifyElements = 1 << 24

// verifySame runs orig and rewritten on the same inputs with the built-in
// interpreter and fails if any output differs beyond atol 1e-4 + rtol 1e-3.
// Inputs come from data (its first 64 samples) or are drawn at random from
// seed with the models' declared input shapes (dynamic dims set to 2).
func verifySame(orig, rewritten *onnx.Model, data string, seed uint64) error {
	so, err := infer.NewSession(orig)
	if err != nil {
		return fmt.Errorf("--verify: %s: %w", orig.Name, err)
	}
	sr, err := infer.NewSession(rewritten)
	if err != nil {
		return fmt.Errorf("--verify: rewritten model: %w", err)
	}
	inputs := map[string]*infer.Tensor{}
	if data != "" {
		ds, err := eval.Load(data, "")
		if err != nil {
			return err
		}
		defer ds.Close()
		if len(so.Inputs()) != 1 {
			return fmt.Errorf("--verify-data needs a model with one input")
		}
		x, err := ds.Batch(0, min(64, ds.N()))
		if err != nil {
			return err
		}
		inputs[so.Inputs()[0].Name] = x
	} else {
		r := rand.New(rand.NewPCG(seed, 11))
		total := 0
		for _, in := range so.Inputs() {
			if in.DType != infer.Float32 {
				return fmt.Errorf("--verify: input %s is not float32; give --verify-data", in.Name)
			}
			shape := make([]int, len(in.Shape))
			n := 1
			for i, d := range in.Shape {
				if d <= 0 {
					d = 2
				}
				shape[i] = d
				// Bounded before multiplying, so that no product wraps.
				if d > maxVerifyElements/n || total+n*d > maxVerifyElements {
					return fmt.Errorf("--verify: input %s declares dims %v, more than %d random values; give --verify-data", in.Name, in.Shape, maxVerifyElements)
				}
				n *= d
			}
			total += n
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			inputs[in.Name] = infer.NewFloat32(shape, x)
		}
	}
	oo, err := so.Run(inputs)
	if err != nil {
		return fmt.Errorf("--verify: %s: %w", orig.Name, err)
	}
	or, err := sr.Run(inputs)
	if err != nil {
		return fmt.Errorf("--verify: rewritten model: %w", err)
	}
	for name, a := range oo {
		b := or[name]
		if b == nil || len(a.F) != len(b.F) {
			return fmt.Errorf("--verify: output %s missing or reshaped", name)
		}
		for i := range a.F {
			x, y := float64(a.F[i]), float64(b.F[i])
			if math.Abs(x-y) > 1e-4+1e-3*math.Abs(x) || math.IsNaN(x) != math.IsNaN(y) {
				return fmt.Errorf("--verify failed: output %s[%d] is %g, was %g", name, i, y, x)
			}
		}
	}
	return nil
}
