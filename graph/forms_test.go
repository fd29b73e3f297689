package graph_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/modelform"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// forms rewrites a model into other storage forms of the same computation.
var forms = map[string]func(*onnx.Model) (*onnx.Model, error){
	"fp16":      func(m *onnx.Model) (*onnx.Model, error) { return modelform.HalfStorage(m, onnxpb.TensorProto_FLOAT16) },
	"bf16":      func(m *onnx.Model) (*onnx.Model, error) { return modelform.HalfStorage(m, onnxpb.TensorProto_BFLOAT16) },
	"constants": modelform.ConstantNodes,
	"fp16 constants": func(m *onnx.Model) (*onnx.Model, error) {
		h, err := modelform.HalfStorage(m, onnxpb.TensorProto_FLOAT16)
		if err != nil {
			return nil, err
		}
		return modelform.ConstantNodes(h)
	},
}

// sitesByValue renders the groups by the values their weight sites read
// (the names layers read, which the forms keep) rather than the tensors
// behind them.
func sitesByValue(a *graph.Analysis) []string {
	var out []string
	for _, g := range a.Groups {
		var s []string
		for _, w := range g.Weights {
			s = append(s, fmt.Sprintf("%s#%d/b%d+%d", w.Value, w.Axis, w.Block, w.Offset))
		}
		out = append(out, fmt.Sprintf("%d: %s", g.Size, strings.Join(s, " ")))
	}
	return out
}

// TestFormsKeepGroups checks that weights stored in fp16/bf16 behind Casts,
// or in Constant nodes, are weights like initializers: every test model in
// every form has the groups, units and frozen axes of the original (before,
// a Cast output was an activation, so fp16 storage froze kernel axes).
func TestFormsKeepGroups(t *testing.T) {
	for arch := range modelSummary {
		path := filepath.Join("..", "testmodels", arch+"_s0.onnx")
		m := loadModel(t, path)
		want, err := graph.Analyze(m)
		if err != nil {
			t.Fatal(err)
		}
		for form, convert := range forms {
			t.Run(arch+"/"+form, func(t *testing.T) {
				c, err := convert(m)
				if err != nil {
					t.Fatal(err)
				}
				got, err := graph.Analyze(c)
				if err != nil {
					t.Fatal(err)
				}
				if got.Summary() != want.Summary() {
					t.Errorf("summary %q, want %q", got.Summary(), want.Summary())
				}
				if g, w := sitesByValue(got), sitesByValue(want); !slices.Equal(g, w) {
					t.Errorf("groups:\n got %q\nwant %q", g, w)
				}
				checkCounts(t, got)
			})
		}
	}
}
