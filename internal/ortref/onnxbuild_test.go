package ortref

import (
	"encoding/binary"
	"math"
)

// A minimal ONNX protobuf encoder for test models, so that these tests do
// not depend on the project's own ONNX packages (which they help to check).

type pb []byte

func (b pb) varint(field int, v uint64) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3|0)
	return binary.AppendUvarint(b, v)
}

func (b pb) bytes(field int, v []byte) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func (b pb) str(field int, s string) pb { return b.bytes(field, []byte(s)) }

const (
	onnxFloat = 1
	onnxInt64 = 7
)

// tensorProto encodes a float32 initializer.
func tensorProto(name string, dims []int, data []float32) []byte {
	var t pb
	for _, d := range dims {
		t = t.varint(1, uint64(d))
	}
	t = t.varint(2, onnxFloat)
	t = t.str(8, name)
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return t.bytes(9, raw)
}

// valueInfo encodes a tensor ValueInfoProto; a dim < 0 becomes the symbolic
// dimension "N".
func valueInfo(name string, elemType int, dims []int) []byte {
	var shape pb
	for _, d := range dims {
		var dim pb
		if d < 0 {
			dim = dim.str(2, "N")
		} else {
			dim = dim.varint(1, uint64(d))
		}
		shape = shape.bytes(1, dim)
	}
	tensor := pb(nil).varint(1, uint64(elemType)).bytes(2, shape)
	typ := pb(nil).bytes(1, tensor)
	return pb(nil).str(1, name).bytes(2, typ)
}

func nodeProto(op, name string, inputs []string, outputs ...string) []byte {
	var n pb
	for _, in := range inputs {
		n = n.str(1, in)
	}
	for _, out := range outputs {
		n = n.str(2, out)
	}
	return n.str(3, name).str(4, op)
}

// denseLayer is one y = x @ W + b layer, optionally followed by Relu.
type denseLayer struct {
	in, out int
	w, b    []float32
	relu    bool
}

// mlpModel encodes an MLP from input "x" [N, layers[0].in] to output "y".
func mlpModel(layers []denseLayer) []byte {
	var g pb
	cur := "x"
	for i, l := range layers {
		w, b := name("w", i), name("b", i)
		g = g.bytes(5, tensorProto(w, []int{l.in, l.out}, l.w))
		g = g.bytes(5, tensorProto(b, []int{l.out}, l.b))
		mm, add := name("mm", i), name("add", i)
		g = g.bytes(1, nodeProto("MatMul", mm, []string{cur, w}, mm))
		next := add
		if i == len(layers)-1 && !l.relu {
			next = "y"
		}
		g = g.bytes(1, nodeProto("Add", add, []string{mm, b}, next))
		cur = next
		if l.relu {
			relu := name("relu", i)
			if i == len(layers)-1 {
				relu = "y"
			}
			g = g.bytes(1, nodeProto("Relu", name("relu", i), []string{cur}, relu))
			cur = relu
		}
	}
	g = g.str(2, "mlp")
	g = g.bytes(11, valueInfo("x", onnxFloat, []int{-1, layers[0].in}))
	g = g.bytes(12, valueInfo("y", onnxFloat, []int{-1, layers[len(layers)-1].out}))
	var m pb
	m = m.varint(1, 7) // ir_version
	m = m.str(2, "ortref-test")
	m = m.bytes(7, g)
	m = m.bytes(8, pb(nil).str(1, "").varint(2, 13)) // opset 13
	return m
}

func name(prefix string, i int) string {
	return prefix + string(rune('0'+i))
}

// mlpForward computes the MLP in float64, as an independent expectation.
func mlpForward(layers []denseLayer, x []float32, batch int) []float32 {
	cur := make([]float64, len(x))
	for i, v := range x {
		cur[i] = float64(v)
	}
	for _, l := range layers {
		next := make([]float64, batch*l.out)
		for n := 0; n < batch; n++ {
			for j := 0; j < l.out; j++ {
				s := float64(l.b[j])
				for k := 0; k < l.in; k++ {
					s += cur[n*l.in+k] * float64(l.w[k*l.out+j])
				}
				if l.relu && s < 0 {
					s = 0
				}
				next[n*l.out+j] = s
			}
		}
		cur = next
	}
	out := make([]float32, len(cur))
	for i, v := range cur {
		out[i] = float32(v)
	}
	return out
}
