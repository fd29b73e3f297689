package simd

// Elementwise float32 arithmetic: one IEEE operation per element, so the
// results are the bits of the plain Go loops on every path (the vector code
// only does eight at a time).

// BinaryOp is an elementwise arithmetic operation.
type BinaryOp int

// The operations of Binary, BinaryScalarX and BinaryScalarY.
const (
	OpAdd BinaryOp = iota
	OpSub
	OpMul
	OpDiv
)

// Binary sets dst[i] = x[i] op y[i] for i < len(dst). It panics if x or y
// is shorter than dst. dst may be x or y.
func Binary(op BinaryOp, dst, x, y []float32) {
	if len(x) < len(dst) || len(y) < len(dst) {
		panic("simd: Binary: operand shorter than dst")
	}
	k := active.binary[op]
	n := len(dst) &^ 7
	if k.vv != nil && n > 0 {
		k.vv(dst[:n], x, y)
	} else {
		n = 0
	}
	binaryGeneric(op, dst[n:], x[n:len(dst)], y[n:len(dst)])
}

// BinaryScalarY sets dst[i] = x[i] op y. It panics if x is shorter than dst.
func BinaryScalarY(op BinaryOp, dst, x []float32, y float32) {
	if len(x) < len(dst) {
		panic("simd: BinaryScalarY: x shorter than dst")
	}
	k := active.binary[op]
	n := len(dst) &^ 7
	if k.vs != nil && n > 0 {
		k.vs(dst[:n], x, y)
	} else {
		n = 0
	}
	d, xs := dst[n:], x[n:len(dst)]
	for i, v := range xs {
		d[i] = apply(op, v, y)
	}
}

// BinaryScalarX sets dst[i] = x op y[i]. It panics if y is shorter than dst.
func BinaryScalarX(op BinaryOp, dst []float32, x float32, y []float32) {
	if len(y) < len(dst) {
		panic("simd: BinaryScalarX: y shorter than dst")
	}
	k := active.binary[op]
	n := len(dst) &^ 7
	if k.sv != nil && n > 0 {
		k.sv(dst[:n], x, y)
	} else {
		n = 0
	}
	d, ys := dst[n:], y[n:len(dst)]
	for i, v := range ys {
		d[i] = apply(op, x, v)
	}
}

// binaryKernels are one path's kernels for one operation, each handling
// len(dst)&^7 elements (nil: Go only).
type binaryKernels struct {
	vv func(dst, x, y []float32)
	vs func(dst, x []float32, y float32)
	sv func(dst []float32, x float32, y []float32)
}

func apply(op BinaryOp, x, y float32) float32 {
	switch op {
	case OpAdd:
		return x + y
	case OpSub:
		return x - y
	case OpMul:
		return x * y
	case OpDiv:
		return x / y
	}
	panic("simd: unknown BinaryOp")
}

func binaryGeneric(op BinaryOp, dst, x, y []float32) {
	x, y = x[:len(dst)], y[:len(dst)]
	switch op {
	case OpAdd:
		for i := range dst {
			dst[i] = x[i] + y[i]
		}
	case OpSub:
		for i := range dst {
			dst[i] = x[i] - y[i]
		}
	case OpMul:
		for i := range dst {
			dst[i] = x[i] * y[i]
		}
	case OpDiv:
		for i := range dst {
			dst[i] = x[i] / y[i]
		}
	default:
		panic("simd: unknown BinaryOp")
	}
}
