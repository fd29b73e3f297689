//go:build noasm || appengine || gccgo || !amd64

package lap

// useAVX2 is false where there is no vector kernel.
var useAVX2 = false

// vectorBuild says that this build has no vector kernels.
const vectorBuild = false

func relaxVector(row, v, d []float64, pred []int32, i int32, off float64) (float64, int) {
	return relaxGeneric(row, v, d, pred, i, off, 0, inf, -1)
}

func twoMinVector(row, v []float64) (float64, int, float64, int) {
	return twoMinGeneric(row, v, 0, inf, -1, inf, -1)
}

func colMaxAVX2(row, vmax *float64, arg *int32, n int, i int32, acc *[4]float64) {
	panic("unreachable")
}

func rowMinAVX2(row, v *float64, n int, vals *[8]float64, idxs *[8]int64, acc *[4]float64) {
	panic("unreachable")
}
