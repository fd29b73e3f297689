package lap_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

func BenchmarkZZFile(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("ZZN"))
	c, err := laptest.ReadMatrix(os.Getenv("ZZFILE"), n)
	if err != nil {
		b.Skip()
	}
	var s lap.Solver
	b.ResetTimer()
	for b.Loop() {
		s.Solve(n, c)
	}
}
