package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/barrier"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/internal/atomicfile"
)

func runBarrier(c *cmdContext, args []string) error {
	fs := newFlags(c, "barrier", "a.onnx b.onnx --data x.npy --labels y.npy [--steps 11] [--plot barrier.png|.svg] [--json]",
		"Test loss and accuracy along the naive and the aligned interpolation paths between a and b, and their loss barriers.")
	data := fs.String("data", "", "inputs (.npy, required)")
	labels := fs.String("labels", "", "labels (.npy, required)")
	steps := fs.Int("steps", 11, "points on each path, endpoints included (2 to 101)")
	plotPath := fs.String("plot", "", "write a plot of both curves to this `file` (.png or .svg)")
	asJSON := fs.asJSON()
	method := fs.method("--align-data, else --data")
	alignData := fs.String("align-data", "", "inputs (.npy) for --method activation or hybrid (default: --data)")
	resetBN := fs.resetBN("each model inside the aligned path, as an extra path,")
	repair := fs.repair("each model inside the aligned path, as an extra path,")
	batch := fs.batch()
	seed := fs.seed("weight matching")
	maxIter := fs.maxIter()
	restarts := fs.restarts()
	startAt := fs.start()
	quiet := fs.quiet()
	force := fs.force()
	pos, err := fs.parse(args, 2, 2)
	if err != nil {
		return err
	}
	if *data == "" || *labels == "" {
		return usagef("barrier: --data and --labels are required")
	}
	if err := firstErr(checkRange("steps", *steps, 2, 101), checkPositive("batch", *batch), checkPositive("max-iter", *maxIter), checkRestarts(*restarts, *method, false), checkStart(*startAt, flagGiven(fs, "start"), *method, false)); err != nil {
		return err
	}
	if ext := strings.ToLower(filepath.Ext(*plotPath)); *plotPath != "" && ext != ".png" && ext != ".svg" {
		return usagef("barrier: --plot must end in .png or .svg")
	}
	if *alignData != "" && *method == "weight" {
		return usagef("barrier: --align-data is for --method activation or hybrid")
	}
	if err := checkMethod(*method, *data); err != nil {
		return err
	}
	paths := files{force: *force}
	paths.read("model", pos...)
	paths.read("--data", *data)
	paths.read("--labels", *labels)
	paths.read("--align-data", *alignData)
	paths.read("--reset-bn", *resetBN)
	paths.read("--repair", *repair)
	paths.write("--plot", *plotPath)
	if err := paths.check(); err != nil {
		return err
	}
	test, err := loadData(*data, *labels)
	if err != nil {
		return err
	}
	defer test.Close()
	fit := test
	if *alignData != "" {
		if fit, err = loadData(*alignData, ""); err != nil {
			return err
		}
		defer fit.Close()
	}
	bnData, repairData, err := loadFixData(*resetBN, *repair)
	if err != nil {
		return err
	}
	defer bnData.Close()
	defer repairData.Close()
	ma, mb, ga, res, err := alignModels(c, pos[0], pos[1], alignOptions{method: *method, fit: fit, batch: *batch, seed: *seed, maxIter: *maxIter, restarts: *restarts, start: *startAt, quiet: *quiet})
	if err != nil {
		return err
	}
	dopts := activation.Options{Batch: *batch, Context: c.ctx}
	variants := []barrier.Variant{barrier.Naive(ga), barrier.Aligned("aligned ("+*method+")", res.Perms)}
	if bnData != nil {
		variants = append(variants, barrier.ResetBN(res.Perms, bnData, dopts))
	}
	if repairData != nil {
		v, err := barrier.Repair(ma, mb, ga, res.Perms, repairData, activation.Options{Batch: *batch, Context: c.ctx, Progress: c.progressBars(*quiet, "REPAIR: statistics of both models", "REPAIR: interpolated model")})
		switch {
		case errors.Is(err, activation.ErrNothingToRepair):
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
	barrierPaths, err := barrier.Measure(ma, mb, ga, test, variants, bopts)
	if err != nil {
		return err
	}
	if *plotPath != "" {
		if err := plotBarrier(*plotPath, pos, barrierPaths); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(c.stdout, barrierJSON{A: pos[0], B: pos[1], Method: *method, Paths: barrierPaths})
	}
	for _, p := range barrierPaths {
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
