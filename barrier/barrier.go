// Package barrier measures loss barriers as Ainsworth et al. (2022) define
// them: the test loss and accuracy of the models (1−λ)·θ_A + λ·π(θ_B) along
// the interpolation path from A to B, for the identity π (the naive path)
// and for an alignment, optionally corrected at each interior point by a
// BatchNorm reset or REPAIR. `onnx-rebasin barrier` prints and plots them.
package barrier

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/merge"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// Path is the test loss and accuracy along one interpolation path.
type Path struct {
	Name     string    `json:"name"`
	Lambda   []float64 `json:"lambda"`
	Loss     []float64 `json:"loss"`
	Accuracy []float64 `json:"accuracy"`
	// Barrier is max over λ of L(λ) − ½(L(0) + L(1)).
	Barrier float64 `json:"barrier"`
	// AccuracyDrop is ½(acc(0) + acc(1)) − min over λ of acc(λ).
	AccuracyDrop float64 `json:"accuracy_drop"`
}

// Midpoint returns the loss and accuracy at the middle point of the path
// (λ = ½ when the number of steps is odd).
func (p Path) Midpoint() (loss, accuracy float64) {
	return p.Loss[len(p.Loss)/2], p.Accuracy[len(p.Accuracy)/2]
}

// Variant is one path to measure: B permuted by Perms and, if Fix is not
// nil, each interior model corrected in place by Fix before it is scored.
type Variant struct {
	Name  string
	Perms permute.Perms
	Fix   func(m *onnx.Model, lambda float64) error
}

// Naive is the path between A and B as trained.
func Naive(ga *graph.Analysis) Variant {
	return Variant{Name: "naive", Perms: permute.Identity(ga)}
}

// Aligned is the path between A and B permuted by perms.
func Aligned(name string, perms permute.Perms) Variant {
	return Variant{Name: name, Perms: perms}
}

// ResetBN is the aligned path with every interior model's BatchNorm
// statistics recomputed on fit (Jordan et al. 2022).
func ResetBN(perms permute.Perms, fit *eval.Dataset, opts activation.Options) Variant {
	return Variant{Name: "aligned + BN reset", Perms: perms, Fix: func(m *onnx.Model, _ float64) error {
		return activation.ResetBatchNorm(m, fit, opts)
	}}
}

// Repair is the aligned path with REPAIR (Jordan et al. 2022) applied at
// every interior point, from the statistics of a and of b aligned by perms
// on fit. It returns activation.ErrNothingToRepair for models without layer
// outputs REPAIR corrects.
func Repair(a, b *onnx.Model, ga *graph.Analysis, perms permute.Perms, fit *eval.Dataset, opts activation.Options) (Variant, error) {
	alignedB := b.Clone()
	if err := permute.Apply(alignedB, ga, perms); err != nil {
		return Variant{}, err
	}
	// a through the identity: Apply gives every group placement its own
	// tensor, so a's layout matches the aligned b's.
	refA := a.Clone()
	if err := permute.Apply(refA, ga, permute.Identity(ga)); err != nil {
		return Variant{}, err
	}
	rep, err := activation.PrepareRepair(refA, alignedB, ga, fit, opts)
	if err != nil {
		return Variant{}, err
	}
	return Variant{Name: "aligned + REPAIR", Perms: perms, Fix: rep.Apply}, nil
}

// Options controls Measure.
type Options struct {
	// Steps is the number of points on each path, endpoints included
	// (at least 2).
	Steps int
	// Batch is the number of samples per forward pass (default 256).
	Batch int
	// Progress, if not nil, is called after each point is scored.
	Progress func(variant string, lambda float64, r eval.Result)
}

// Measure scores, on test (with labels), Steps evenly spaced models of
// every variant's path between a and b (b must have a's architecture;
// ga is a's analysis).
func Measure(a, b *onnx.Model, ga *graph.Analysis, test *eval.Dataset, variants []Variant, opts Options) ([]Path, error) {
	if opts.Steps < 2 {
		return nil, fmt.Errorf("barrier: %d steps, want at least 2", opts.Steps)
	}
	if test.Y == nil {
		return nil, errors.New("barrier: the test data has no labels")
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = 256
	}
	identity := permute.Identity(ga)
	var paths []Path
	for _, v := range variants {
		p := Path{Name: v.Name}
		for i := 0; i < opts.Steps; i++ {
			l := float64(i) / float64(opts.Steps-1)
			m, err := merge.Aligned([]*onnx.Model{a, b}, ga, []permute.Perms{identity, v.Perms}, []float64{1 - l, l})
			if err != nil {
				return nil, err
			}
			if v.Fix != nil && i > 0 && i < opts.Steps-1 {
				if err := v.Fix(m, l); err != nil {
					return nil, fmt.Errorf("%s at lambda %.3g: %w", v.Name, l, err)
				}
			}
			sess, err := infer.NewSession(m)
			if err != nil {
				return nil, err
			}
			res, err := eval.Run(sess, test, batch, nil)
			if err != nil {
				return nil, err
			}
			p.Lambda = append(p.Lambda, l)
			p.Loss = append(p.Loss, res.Loss)
			p.Accuracy = append(p.Accuracy, res.Accuracy)
			if opts.Progress != nil {
				opts.Progress(v.Name, l, res)
			}
		}
		ends := (p.Loss[0] + p.Loss[len(p.Loss)-1]) / 2
		endAcc := (p.Accuracy[0] + p.Accuracy[len(p.Accuracy)-1]) / 2
		p.Barrier, p.AccuracyDrop = math.Inf(-1), math.Inf(-1)
		for i := range p.Loss {
			p.Barrier = math.Max(p.Barrier, p.Loss[i]-ends)
			p.AccuracyDrop = math.Max(p.AccuracyDrop, endAcc-p.Accuracy[i])
		}
		paths = append(paths, p)
	}
	return paths, nil
}
