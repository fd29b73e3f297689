// Package infer runs ONNX models on the CPU in float32, without Python or
// native libraries: the forward passes that activation matching, BatchNorm
// resets, REPAIR and loss-barrier curves need.
//
// It covers the operators that CNNs, MLPs and transformer encoders exported
// by torch.onnx use (Supported tells whether one is): Gemm, MatMul, Conv,
// ConvTranspose, pooling, BatchNormalization, LayerNormalization,
// InstanceNormalization, the usual activations, Softmax/LogSoftmax,
// elementwise arithmetic and comparisons with numpy broadcasting, the Reduce*
// family and the shape operators (Reshape, Transpose, Concat, Split, Slice,
// Gather, Pad, ...), following each operator's semantics at the model's opset.
// Tensors hold float32, int64 (shapes, indices) or bool.
//
// Usage:
//
//	m, _ := onnx.Load("model.onnx")
//	sess, err := infer.NewSession(m) // compiles once; fails early on anything unsupported
//	x := infer.NewFloat32([]int{64, 1, 28, 28}, pixels)
//	outs, err := sess.Run(map[string]*infer.Tensor{"input": x})
//	logits := outs["logits"]
//
// Intermediate values are available by name with Capture (kept and returned
// with the outputs), Observe (a callback seeing the named values as they are
// computed, without copies, which it may change in place; the interpreter
// recycles them afterwards, so statistics over a data set need no more
// memory than a plain run) or OnValue (every node output). BatchNormStatistics runs BatchNormalization in
// batch-statistics mode and reports per-channel sums for re-estimating
// running statistics; BatchNormAccumulator adds them up over a data set.
//
// A Session compiles the graph once: nodes are put in topological order,
// bound to kernels whose attributes are checked up front (an unsupported
// operator, attribute value or element type is an *UnsupportedError from
// NewSession, never a failure halfway through a run), and subgraphs that
// depend only on initializers and constants are evaluated at that point.
// Buffers of intermediate values are recycled within and across runs.
//
// Matrix products use package simd: Gemm and MatMul its SGEMM (tiny
// products without packing), Conv with constant weights a GEMM on weights
// packed once that reads the image itself (zero-padded, split into stride
// phases) instead of an im2col matrix, ConvTranspose im2col/col2im.
// Batches, channels and the larger elementwise kernels are split over up
// to GOMAXPROCS goroutines (see Threads). Every output element is computed
// by one goroutine with a fixed order of operations, so results are
// bit-for-bit the same whatever the number of threads.
//
// Chains Conv → BatchNormalization (inference mode) → Relu or Clip →
// 2×2 MaxPool are fused into one node when nothing else reads the
// intermediate values: see Fusion, which also turns it off. Runs with
// OnValue, BatchNormStatistics, or a Capture or Observe of a fused-away value execute
// the graph node by node. Exp, Softmax and Erf use float32 approximations
// (package simd documents their error bounds).
//
// BatchNormalization's training mode (training_mode=1) is supported as in the
// ONNX reference; Dropout is always the identity (a training-mode Dropout with
// a nonzero ratio is refused).
package infer
