package simd

import "math"

// Relu sets dst[i] = 0 where src[i] < 0 and dst[i] = src[i] otherwise, so
// NaN and -0 pass through unchanged. dst and src may be the same slice. It
// panics if len(dst) < len(src).
func Relu(dst, src []float32) {
	if len(dst) < len(src) {
		panic("simd: Relu: dst shorter than src")
	}
	active.relu(dst, src)
}

// MaxPool2x2 sets dst[i] to the maximum of the 2×2 window r0[2i], r0[2i+1],
// r1[2i], r1[2i+1] (two input rows of a 2×2, stride-2 max pooling), with
// the rule of ONNX Runtime's and package infer's MaxPool: starting from the
// first value in that order, the running maximum is replaced by the next
// value v when v > max or v is NaN. So of +0 and -0 the first one wins, and
// a NaN wins over numbers (the last NaN, when there are several). It panics
// if len(r0) or len(r1) < 2*len(dst).
func MaxPool2x2(dst, r0, r1 []float32) {
	if len(r0) < 2*len(dst) || len(r1) < 2*len(dst) {
		panic("simd: MaxPool2x2: input rows shorter than 2*len(dst)")
	}
	active.maxPool2x2(dst, r0, r1)
}

func reluGeneric(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		b := math.Float32bits(v)
		// Negative, non-zero and not NaN: 0x80000001..0xff800000.
		if b-0x80000001 < 0x7f800000 {
			b = 0
		}
		dst[i] = math.Float32frombits(b)
	}
}

// maxNaN is MaxPool2x2's update rule.
func maxNaN(acc, v float32) float32 {
	if v > acc || v != v {
		return v
	}
	return acc
}

func maxPool2x2Generic(dst, r0, r1 []float32) {
	r0, r1 = r0[:2*len(dst)], r1[:2*len(dst)]
	for i := range dst {
		dst[i] = maxNaN(maxNaN(maxNaN(r0[2*i], r0[2*i+1]), r1[2*i]), r1[2*i+1])
	}
}

// MaxPool2x2Rows is MaxPool2x2 over rows output rows at once: output row r,
// dst[r*outW : (r+1)*outW], pools input rows src[2r*ld:] and
// src[(2r+1)*ld:] (2*outW <= ld). It saves a call per row on the narrow
// planes of CNNs. It panics if dst or src is too short.
func MaxPool2x2Rows(dst, src []float32, rows, outW, ld int) {
	if rows <= 0 || outW <= 0 {
		return
	}
	if 2*outW > ld || len(dst) < rows*outW || len(src) < (2*rows-1)*ld+2*outW {
		panic("simd: MaxPool2x2Rows: bad geometry or short slice")
	}
	dst = dst[:rows*outW]
	done := 0
	if active.maxPool2x2Rows != nil {
		n := rows
		// Narrow rows read 16 inputs per row pair.
		for outW < 8 && n > 0 && (2*n-1)*ld+16 > len(src) {
			n--
		}
		done = active.maxPool2x2Rows(dst, src, n, outW, ld)
	}
	for r := done; r < rows; r++ {
		maxPool2x2Generic(dst[r*outW:(r+1)*outW], src[2*r*ld:], src[(2*r+1)*ld:])
	}
}

// CopyRows copies rows rows of w floats: row r of src, src[r*srcStride:],
// to dst[r*dstStride:]. It is copy() in a loop without a call per row, for
// the many short rows of CNN feature maps (a convolution's output
// compaction, an image's padded copy). The rows must not overlap. It panics
// if a slice is too short.
func CopyRows(dst, src []float32, rows, w, dstStride, srcStride int) {
	if rows <= 0 || w <= 0 {
		return
	}
	if len(dst) < (rows-1)*dstStride+w || len(src) < (rows-1)*srcStride+w || dstStride < w || srcStride < w {
		panic("simd: CopyRows: bad geometry or short slice")
	}
	if w >= 8 && active.copyRows != nil {
		active.copyRows(dst, src, rows, w, dstStride, srcStride)
		return
	}
	for r := 0; r < rows; r++ {
		copy(dst[r*dstStride:r*dstStride+w], src[r*srcStride:r*srcStride+w])
	}
}

// CopyRowsEven is CopyRows taking every second element of the source
// rows: dst[r*dstStride+j] = src[r*srcStride+2j] for j < w (a stride-2
// convolution's phase images). It panics if a slice is too short.
func CopyRowsEven(dst, src []float32, rows, w, dstStride, srcStride int) {
	if rows <= 0 || w <= 0 {
		return
	}
	if len(dst) < (rows-1)*dstStride+w || len(src) < (rows-1)*srcStride+2*w-1 || dstStride < w {
		panic("simd: CopyRowsEven: bad geometry or short slice")
	}
	done := 0
	if w >= 8 && active.copyRowsEven != nil {
		// The vector code reads one element past each row's last.
		done = rows
		if (rows-1)*srcStride+2*w > len(src) {
			done--
		}
		active.copyRowsEven(dst, src, done, w, dstStride, srcStride)
	}
	for r := done; r < rows; r++ {
		d, s := dst[r*dstStride:r*dstStride+w], src[r*srcStride:]
		for j := range d {
			d[j] = s[2*j]
		}
	}
}
