package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/internal/atomicfile"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// barrierPath is the loss and accuracy along one interpolation path.
type barrierPath struct {
	Name     string    `json:"name"`
	Lambda   []float64 `json:"lambda"`
	Loss     []float64 `json:"loss"`
	Accuracy []float64 `json:"accuracy"`
	// Barrier is max over λ of L(λ) − ½(L(0) + L(1)).
	Barrier float64 `json:"barrier"`
	// AccuracyDrop is ½(acc(0) + acc(1)) − min over λ of acc(λ).
	AccuracyDrop float64 `json:"accuracy_drop"`
}

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
	quiet := fs.quiet()
	force := fs.force()
	pos, err := fs.parse(args, 2, 2)
	if err != nil {
		return err
	}
	if *data == "" || *labels == "" {
		return usagef("barrier: --data and --labels are required")
	}
	if err := firstErr(checkRange("steps", *steps, 2, 101), checkPositive("batch", *batch), checkPositive("max-iter", *maxIter)); err != nil {
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
	fit := test
	if *alignData != "" {
		if fit, err = loadData(*alignData, ""); err != nil {
			return err
		}
	}
	bnData, repairData, err := loadFixData(*resetBN, *repair)
	if err != nil {
		return err
	}
	ma, mb, ga, res, err := alignModels(c, pos[0], pos[1], alignOptions{method: *method, fit: fit, batch: *batch, seed: *seed, maxIter: *maxIter, quiet: *quiet})
	if err != nil {
		return err
	}
	perms := res.Perms
	dopts := permute.DataOptions{Batch: *batch, Context: c.ctx}
	identity := permute.Identity(ga)
	type variant struct {
		name  string
		perms permute.Perms
		fix   func(m *onnx.Model, lambda float64) error
	}
	variants := []variant{{"naive", identity, nil}, {"aligned (" + *method + ")", perms, nil}}
	if bnData != nil {
		variants = append(variants, variant{"aligned + BN reset", perms, func(m *onnx.Model, _ float64) error {
			return permute.ResetBatchNorm(m, bnData, dopts)
		}})
	}
	if repairData != nil {
		alignedB := mb.Clone()
		if err := permute.Apply(alignedB, ga, perms); err != nil {
			return err
		}
		rep, err := permute.PrepareRepair(ma.Clone(), alignedB, ga, repairData, permute.DataOptions{Batch: *batch, Context: c.ctx, Progress: c.progressBar(*quiet, "REPAIR statistics")})
		switch {
		case errors.Is(err, permute.ErrNothingToRepair):
			fmt.Fprintf(c.stderr, "barrier: skipping REPAIR: %v\n", err)
		case err != nil:
			return err
		default:
			variants = append(variants, variant{"aligned + REPAIR", perms, rep.Apply})
		}
	}
	var barrierPaths []barrierPath
	for _, v := range variants {
		p := barrierPath{Name: v.name}
		for i := 0; i < *steps; i++ {
			l := float64(i) / float64(*steps-1)
			m, err := permute.MergeAligned([]*onnx.Model{ma, mb}, ga, []permute.Perms{identity, v.perms}, []float64{1 - l, l})
			if err != nil {
				return err
			}
			if v.fix != nil && i > 0 && i < *steps-1 {
				if err := v.fix(m, l); err != nil {
					return err
				}
			}
			sess, err := infer.NewSession(m)
			if err != nil {
				return err
			}
			res, err := eval.Run(sess, test, *batch, nil)
			if err != nil {
				return err
			}
			p.Lambda = append(p.Lambda, l)
			p.Loss = append(p.Loss, res.Loss)
			p.Accuracy = append(p.Accuracy, res.Accuracy)
			if !*quiet {
				fmt.Fprintf(c.stderr, "%s: lambda %.2f loss %.4f accuracy %.4f\n", v.name, l, res.Loss, res.Accuracy)
			}
		}
		ends := (p.Loss[0] + p.Loss[len(p.Loss)-1]) / 2
		endAcc := (p.Accuracy[0] + p.Accuracy[len(p.Accuracy)-1]) / 2
		p.Barrier, p.AccuracyDrop = math.Inf(-1), math.Inf(-1)
		for i := range p.Loss {
			p.Barrier = math.Max(p.Barrier, p.Loss[i]-ends)
			p.AccuracyDrop = math.Max(p.AccuracyDrop, endAcc-p.Accuracy[i])
		}
		barrierPaths = append(barrierPaths, p)
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
		fmt.Fprintf(c.stdout, "%-26s barrier %.4f  midpoint loss %.4f  midpoint accuracy %.4f\n", p.Name+":", p.Barrier, p.Loss[len(p.Loss)/2], p.Accuracy[len(p.Accuracy)/2])
	}
	return nil
}

// plotBarrier draws loss against λ for every path, as in the paper's figures.
func plotBarrier(path string, models []string, paths []barrierPath) error {
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
