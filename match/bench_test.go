package match_test

import (
	"fmt"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/match"
)

// BenchmarkWeightsTestPairs times weight matching alone (no loading or
// saving) on the trained test pairs, one descent and with one restart.
//
//	go test ./match -run '^$' -bench WeightsTestPairs -count 10
func BenchmarkWeightsTestPairs(b *testing.B) {
	for _, pair := range []string{"mlp", "mlp32", "cnn_bn", "resnet"} {
		ma, ga := testkit.LoadAnalyze(b, "../testmodels/"+pair+"_s0.onnx")
		mb, _ := testkit.LoadAnalyze(b, "../testmodels/"+pair+"_s1.onnx")
		for _, restarts := range []int{0, 1} {
			b.Run(fmt.Sprintf("%s/restarts=%d", pair, restarts), func(b *testing.B) {
				for b.Loop() {
					if _, err := match.Weights(ma, mb, ga, match.Options{Restarts: restarts}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
