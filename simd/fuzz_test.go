package simd

import (
	"encoding/binary"
	"math"
	"testing"
)

// Fuzz tests: every vector path against the generic one. Run for a while
// with, e.g.,
//
//	go test ./simd -run '^$' -fuzz '^FuzzGemm$' -fuzztime 30s
//	go test ./simd -run '^$' -fuzz '^FuzzVector$' -fuzztime 30s

// floatsFrom turns fuzz bytes into finite float32s of moderate magnitude
// (the tolerance below is meaningless for overflowing sums).
func floatsFrom(data []byte) []float32 {
	out := make([]float32, len(data)/4)
	for i := range out {
		v := math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e6 {
			v = float32(int32(binary.LittleEndian.Uint32(data[4*i:]))) / (1 << 31)
		}
		out[i] = v
	}
	return out
}

func FuzzVector(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, float32(0.5))
	f.Add(make([]byte, 4*67), float32(-3))
	f.Fuzz(func(t *testing.T, data []byte, alpha float32) {
		if math.IsNaN(float64(alpha)) || math.Abs(float64(alpha)) > 1e6 {
			alpha = 1
		}
		v := floatsFrom(data)
		x, y := v[:len(v)/2], v[len(v)/2:len(v)/2*2]
		var mag float64
		for i := range x {
			mag += math.Abs(float64(x[i]) * float64(y[i]))
		}
		n := float64(len(x) + 1)
		wantDot := dotGeneric(x, y)
		wantDot64 := dotF64Generic(x, y)
		for _, im := range available() {
			if d := math.Abs(float64(im.dot(x, y) - wantDot)); d > 2*n*eps32*mag {
				t.Fatalf("%s: dot %v, generic %v", im.name, im.dot(x, y), wantDot)
			}
			if d := math.Abs(im.dotF64(x, y) - wantDot64); d > 2*n*eps64*mag {
				t.Fatalf("%s: dotF64 %v, generic %v", im.name, im.dotF64(x, y), wantDot64)
			}
			got := append([]float32(nil), y...)
			want := append([]float32(nil), y...)
			im.axpy(alpha, x, got)
			axpyGeneric(alpha, x, want)
			for i := range got {
				// FMA rounds once, the generic path twice; below the
				// normal range a rounding errs by up to half the fixed
				// subnormal spacing, not by a relative amount.
				tol := 2*eps32*(math.Abs(float64(alpha)*float64(x[i]))+math.Abs(float64(y[i]))) + 2*math.SmallestNonzeroFloat32
				if d := math.Abs(float64(got[i] - want[i])); d > tol {
					t.Fatalf("%s: axpy[%d] %v, generic %v", im.name, i, got[i], want[i])
				}
			}
			got = append(got[:0], x...)
			want = append(want[:0], x...)
			im.scale(alpha, got)
			scaleGeneric(alpha, want)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s: scale[%d] %v, generic %v", im.name, i, got[i], want[i])
				}
			}
		}
	})
}

func FuzzGemm(f *testing.F) {
	f.Add(uint8(7), uint8(33), uint8(17), uint8(3), uint8(1), uint64(1), float32(1), float32(0))
	f.Add(uint8(65), uint8(5), uint8(100), uint8(0), uint8(7), uint64(2), float32(-0.5), float32(2))
	f.Fuzz(func(t *testing.T, mb, nb, kb, flags, pad uint8, seed uint64, alpha, beta float32) {
		m, n, k := int(mb)%130, int(nb)%130, int(kb)%300
		transA, transB := flags&1 != 0, flags&2 != 0
		workers := 1 + int(flags>>2)%5
		bad := func(v float32) bool { return math.IsNaN(float64(v)) || math.Abs(float64(v)) > 1e3 }
		if bad(alpha) {
			alpha = 1
		}
		if bad(beta) {
			beta = 0.5
		}
		p := newLogical(m, n, k, seed)
		ar, ac, br, bc := m, k, k, n
		if transA {
			ar, ac = k, m
		}
		if transB {
			br, bc = n, k
		}
		lda, ldb, ldc := max(1, ac)+int(pad%4), max(1, bc)+int(pad/4%4), max(1, n)+int(pad/16%4)
		ga := layout(ar, ac, lda, int(pad%3), func(r, c int) float32 {
			if transA {
				return p.a[c*k+r]
			}
			return p.a[r*k+c]
		})
		gb := layout(br, bc, ldb, int(pad%5), func(r, c int) float32 {
			if transB {
				return p.b[c*n+r]
			}
			return p.b[r*n+c]
		})
		cg := randVals(seed + 9)
		cInit := make([]float32, m*n)
		for i := range cInit {
			cInit[i] = cg(i)
		}
		var results [][]float32
		impls := available()
		for _, im := range impls {
			gc := layout(m, n, ldc, int(pad%7), func(r, c int) float32 { return cInit[r*n+c] })
			gemm(im, workers, transA, transB, m, n, k, alpha, ga.data, lda, gb.data, ldb, beta, gc.data, ldc)
			ga.check(t, im.name+" A")
			gb.check(t, im.name+" B")
			gc.check(t, im.name+" C")
			checkGaps(t, im.name+" C", gc.data, n, ldc)
			res := make([]float32, m*n)
			for i := 0; i < m && n > 0; i++ {
				copy(res[i*n:(i+1)*n], gc.data[i*ldc:i*ldc+n])
			}
			results = append(results, res)
		}
		gen := results[len(results)-1]
		for ii, res := range results[:len(results)-1] {
			for i := range res {
				tol := 2*float64(k+2)*eps32*(math.Abs(float64(alpha))*p.mag[i]+math.Abs(float64(beta)*float64(cInit[i]))) + 1e-30
				if d := math.Abs(float64(res[i]) - float64(gen[i])); !(d <= tol) {
					t.Fatalf("%s m=%d n=%d k=%d tA=%v tB=%v: element %d = %v, generic %v", impls[ii].name, m, n, k, transA, transB, i, res[i], gen[i])
				}
				if math.Float32bits(res[i]) != math.Float32bits(results[0][i]) {
					t.Fatalf("%s and %s differ at element %d", impls[ii].name, impls[0].name, i)
				}
			}
		}
	})
}
