package infer

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkModels runs the test models at batch 1 and 256 (the structure
// models in testmodels/large, when present, at batch 1 and 32), reporting
// images/s (wall time) and the process CPU time per run (all threads):
//
//	go test ./infer -run '^$' -bench Models -benchtime 2x
func BenchmarkModels(b *testing.B) {
	paths := append(smallModels(b), largeModels(b)...)
	x, _ := fashion(b, "test", 256)
	for _, path := range paths {
		batches := []int{1, 256}
		if filepath.Base(filepath.Dir(path)) == "large" {
			batches = []int{1, 32}
		}
		for _, n := range batches {
			b.Run(fmt.Sprintf("%s/batch%d", modelName(path), n), func(b *testing.B) {
				_, s := loadSession(b, path)
				var in map[string]*Tensor
				if s.Inputs()[0].Shape != nil && len(s.Inputs()[0].Shape) == 4 && s.Inputs()[0].Shape[1] == 1 {
					in = map[string]*Tensor{s.Inputs()[0].Name: batchOf(x, 0, n)}
				} else {
					var err error
					if in, err = randomInput(s, n, 1); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := s.Run(in); err != nil { // warm the buffer pool
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := processCPU()
				for i := 0; i < b.N; i++ {
					if _, err := s.Run(in); err != nil {
						b.Fatal(err)
					}
				}
				cpu := processCPU() - cpu0
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
				// CPU time is steadier than wall time on a shared machine.
				b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
			})
		}
	}
}
