package lap_test

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

// FuzzSolve decodes a small matrix from the input and checks the solver
// against brute force, the dual certificate, and a warm re-solve.
//
// Layout: data[0] picks n = 1..7 (low 3 bits) and the entry encoding (bit
// 3): small signed integers, one byte each (many ties), or raw float64
// bit patterns, eight bytes each (any value, NaN and ±Inf included). Bytes
// missing at the end read as zero.
func FuzzSolve(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{7})
	f.Add([]byte{0x0c, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}) // NaN first entry
	f.Add([]byte{0x05, 0xff, 0x80, 0x7f, 0x01, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		n := int(data[0]&7)%7 + 1
		floats := data[0]&8 != 0
		data = data[1:]
		cost := make([]float64, n*n)
		bad := false
		for k := range cost {
			if floats {
				var b [8]byte
				if 8*k < len(data) {
					copy(b[:], data[8*k:])
				}
				c := math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
				if math.IsNaN(c) || math.IsInf(c, 0) {
					bad = true
				} else if math.Abs(c) > 1e100 {
					c = math.Mod(c, 1e100) // keep inside the always-accepted range
				}
				cost[k] = c
			} else if k < len(data) {
				cost[k] = float64(int8(data[k]))
			}
		}
		var s lap.Solver
		perm, total, err := s.Solve(n, cost)
		if bad {
			if !errors.Is(err, lap.ErrNonFinite) {
				t.Fatalf("non-finite input: err = %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		want, _ := laptest.BruteForce(n, cost)
		checkSolution(t, &s, n, cost, perm, total, want, !floats)

		// Warm re-solve of a shifted matrix from these duals and perm.
		_, v := s.Duals()
		shifted := make([]float64, len(cost))
		for k, c := range cost {
			shifted[k] = c
			if k%3 == 0 {
				shifted[k] = c + 1
			}
		}
		want, _ = laptest.BruteForce(n, shifted)
		perm, total, err = s.SolveWarm(n, shifted, perm, v)
		if err != nil {
			t.Fatal(err)
		}
		checkSolution(t, &s, n, shifted, perm, total, want, !floats)
	})
}
