package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/onnx-rebasin/onnx-rebasin/barrier"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/internal/atomicfile"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

func runBarrier(c *cmdContext, args []string) error {
	fs := newFlags(c, "barrier", "a.onnx b.onnx --data x.npy --labels y.npy [--steps 11] [--plot barrier.png|.svg] [--json]",
		"Test loss and accuracy along the naive and the aligned interpolation paths between a and b, and their loss barriers.")
	data := fs.String("data", "", "inputs (.npy, required)")
	labels := fs.String("labels", "", "labels (.npy, required)")
	steps := fs.Int("steps", 11, "points on each path, endpoints included")
	plotPath := fs.String("plot", "", "write a plot of both curves to this `file` (.png or .svg)")
	asJSON := fs.Bool("json", false, "print JSON")
	method := fs.String("method", "weight", "alignment: weight, activation or hybrid (activation start for weight matching)")
	alignData := fs.String("align-data", "", "data (.npy) for activation matching, BN reset and REPAIR (default: --data)")
	resetBN := fs.Bool("reset-bn", false, "also the aligned path with BatchNorm statistics recomputed on the data")
	repair := fs.Bool("repair", false, "also the aligned path corrected with REPAIR")
	batch := fs.Int("batch", 256, "batch size")
	seed := fs.Uint64("seed", 0, "seed for weight matching")
	quiet := fs.Bool("q", false, "no progress on stderr")
	pos, err := parseFlags(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if *data == "" || *labels == "" {
		return usagef("barrier: --data and --labels are required")
	}
	if *steps < 2 || *steps > 101 {
		return usagef("barrier: --steps must be between 2 and 101")
	}
	if ext := strings.ToLower(filepath.Ext(*plotPath)); *plotPath != "" && ext != ".png" && ext != ".svg" {
		return usagef("barrier: --plot must end in .png or .svg")
	}
	test, err := eval.Load(*data, *labels)
	if err != nil {
		return err
	}
	fit := test
	if *alignData != "" {
		if fit, err = eval.Load(*alignData, ""); err != nil {
			return err
		}
	}
	ma, mb, ga, res, err := alignModels(c, pos[0], pos[1], alignOptions{method: *method, fit: fit, batch: *batch, seed: *seed, quiet: *quiet})
	if err != nil {
		return err
	}
	dopts := permute.DataOptions{Batch: *batch}
	variants := []barrier.Variant{barrier.Naive(ga), barrier.Aligned("aligned ("+*method+")", res.Perms)}
	if *resetBN {
		variants = append(variants, barrier.ResetBN(res.Perms, fit, dopts))
	}
	if *repair {
		v, err := barrier.Repair(ma, mb, ga, res.Perms, fit, dopts)
		switch {
		case errors.Is(err, permute.ErrNothingToRepair):
			fmt.Fprintf(c.stderr, "barrier: skipping REPAIR: %v\n", err)
		case err != nil:
			return err
		default:
			variants = append(variants, v)
		}
	}
	bopts := barrier.Options{Steps: *steps, Batch: *batch}
	if !*quiet {
		bopts.Progress = func(name string, l float64, r eval.Result) {
			fmt.Fprintf(c.stderr, "%s: lambda %.2f loss %.4f accuracy %.4f\n", name, l, r.Loss, r.Accuracy)
		}
	}
	paths, err := barrier.Measure(ma, mb, ga, test, variants, bopts)
	if err != nil {
		return err
	}
	if *plotPath != "" {
		if err := plotBarrier(*plotPath, pos, paths); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"a": pos[0], "b": pos[1], "paths": paths})
	}
	for _, p := range paths {
		loss, acc := p.Midpoint()
		fmt.Fprintf(c.stdout, "%-26s barrier %.4f  midpoint loss %.4f  midpoint accuracy %.4f\n", p.Name+":", p.Barrier, loss, acc)
	}
	return nil
}

// plotBarrier draws loss against λ for every path, as in the paper's figures.
func plotBarrier(path string, models []string, paths []barrier.Path) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s → %s", filepath.Base(models[0]), filepath.Base(models[1]))
	p.X.Label.Text = "λ"
	p.Y.Label.Text = "test loss"
	p.Add(plotter.NewGrid())
	colors := []color.RGBA{{R: 200, A: 255}, {B: 200, A: 255}, {G: 150, A: 255}, {R: 150, B: 150, A: 255}}
	for i, bp := range paths {
		pts := make(plotter.XYs, len(bp.Lambda))
		for k := range bp.Lambda {
			pts[k].X, pts[k].Y = bp.Lambda[k], bp.Loss[k]
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		line.Color = colors[i%len(colors)]
		points.Color = colors[i%len(colors)]
		p.Add(line, points)
		p.Legend.Add(fmt.Sprintf("%s (barrier %.3f)", bp.Name, bp.Barrier), line, points)
	}
	p.Legend.Top = true
	wt, err := p.WriterTo(6*vg.Inch, 4*vg.Inch, strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), "."))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}
