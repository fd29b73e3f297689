package permute

import (
	"bytes"
	"fmt"
	"math"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Average returns a copy of models[0] whose floating-point weights are the
// weighted average Σ wᵢ·Wᵢ of the models' (weights are normalised to sum to
// one). The models must share one architecture and already be aligned.
// Averaging runs in float64 and is written back in each tensor's own type,
// so fp16/bf16 models lose nothing to intermediate rounding. Tensors of
// other types (e.g. int64 shape constants) must be identical in all models.
func Average(models []*onnx.Model, weights []float64) (*onnx.Model, error) {
	if len(models) == 0 {
		return nil, fmt.Errorf("no models to average")
	}
	if weights == nil {
		weights = make([]float64, len(models))
		for i := range weights {
			weights[i] = 1
		}
	}
	if len(weights) != len(models) {
		return nil, fmt.Errorf("%d weights for %d models", len(weights), len(models))
	}
	sum := 0.0
	for _, w := range weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("weight %v is not finite", w)
		}
		sum += w
	}
	if sum == 0 {
		return nil, fmt.Errorf("weights sum to zero")
	}
	out := models[0].Clone()
	all := make([]map[string]*onnxpb.TensorProto, len(models))
	for i, m := range models {
		all[i] = m.Weights()
	}
	ow := out.Weights()
	for _, name := range sortedNames(all[0]) {
		t0 := all[0][name]
		for i := 1; i < len(models); i++ {
			if all[i][name] == nil {
				return nil, fmt.Errorf("weight %q is in %s but not in %s", name, models[0].Name, models[i].Name)
			}
		}
		if !onnx.IsFloat(onnx.DataType(t0)) {
			ref, err := models[0].TensorBytes(t0)
			if err != nil {
				return nil, err
			}
			for i := 1; i < len(models); i++ {
				other, err := models[i].TensorBytes(all[i][name])
				if err != nil {
					return nil, err
				}
				if !bytes.Equal(ref, other) {
					return nil, fmt.Errorf("non-float weight %q (%v) differs between %s and %s; cannot average it", name, onnx.DataType(t0), models[0].Name, models[i].Name)
				}
			}
			continue
		}
		acc, err := models[0].Float64s(t0)
		if err != nil {
			return nil, err
		}
		for k := range acc {
			acc[k] *= weights[0] / sum
		}
		for i := 1; i < len(models); i++ {
			v, err := models[i].Float64s(all[i][name])
			if err != nil {
				return nil, err
			}
			if len(v) != len(acc) {
				return nil, fmt.Errorf("weight %q has %d elements in %s, %d in %s", name, len(acc), models[0].Name, len(v), models[i].Name)
			}
			f := weights[i] / sum
			for k := range acc {
				acc[k] += f * v[k]
			}
		}
		if err := out.SetFloat64s(ow[name], acc); err != nil {
			return nil, err
		}
	}
	return out, nil
}
