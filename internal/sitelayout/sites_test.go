package sitelayout

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// TestNamesUnique: names taken by the model (initializers, node outputs,
// inputs) or handed out before are never handed out again, and a free
// base is kept as it is; UniqueName gives what a fresh set would.
func TestNamesUnique(t *testing.T) {
	m := &onnx.Model{Proto: &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{
		Initializer: []*onnxpb.TensorProto{{Name: proto.String("w")}, {Name: proto.String("w_2")}},
		Node:        []*onnxpb.NodeProto{{Output: []string{"y"}}},
		Input:       []*onnxpb.ValueInfoProto{{Name: proto.String("x")}},
	}}}
	ns := NamesOf(m)
	for _, c := range []struct{ base, want string }{
		{"w", "w_3"},
		{"w", "w_4"},
		{"y", "y_2"},
		{"x", "x_2"},
		{"x", "x_3"},
		{"z", "z"},
		{"z", "z_2"},
	} {
		if got := ns.Unique(c.base); got != c.want {
			t.Errorf("Unique(%q) = %q, want %q", c.base, got, c.want)
		}
	}
	if got := UniqueName(m, "w"); got != "w_3" {
		t.Errorf("UniqueName(w) = %q, want w_3 (the model itself gained no name)", got)
	}
}
