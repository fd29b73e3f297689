package simd_test

import (
	"fmt"

	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// A 2×3×2 tensor read along its middle axis: row i holds w[o][i][t] for
// every o and t, that is two runs of two columns (one per o), with rows two
// elements apart. B is the same tensor with its first axis reversed, which
// only changes the runs' offsets.
func ExampleGemmRuns() {
	w := []float32{
		1, 2, 3, 4, 5, 6, // o = 0: (i, t) = (0,0) (0,1) (1,0) (1,1) (2,0) (2,1)
		7, 8, 9, 10, 11, 12, // o = 1
	}
	a := simd.RunMatrix{Data: w, RowStride: 2, Runs: []simd.Run{{Col: 0, Off: 0, Len: 2}, {Col: 2, Off: 6, Len: 2}}}
	b := simd.RunMatrix{Data: w, RowStride: 2, Runs: []simd.Run{{Col: 0, Off: 6, Len: 2}, {Col: 2, Off: 0, Len: 2}}}
	c := make([]float32, 3*3)
	simd.GemmRuns(0, 3, 3, 4, a, b, c, 3)
	for i := 0; i < 3; i++ {
		fmt.Println(c[i*3 : i*3+3])
	}
	// Output:
	// [46 82 118]
	// [82 134 186]
	// [118 186 254]
}
