// Command heads measures how much the head-aware block groups of attention
// help model merging: on a trained pair, for weight, activation and hybrid
// matching, with the heads frozen or matched hierarchically and with or
// without the residual stream permuted, the loss barrier and the midpoint
// test accuracy of the aligned interpolation path.
//
// Usage (from the repository root):
//
//	go run ./bench/heads [-a testmodels/transformer_s0.onnx] [-b testmodels/transformer_s1.onnx] [-steps 11]
//
// "Heads frozen" drops the block groups from the analysis (what the tool
// did before it knew attention); "residual fixed" drops the largest group
// (the residual stream of the transformer test models). Test loss and
// accuracy on testmodels/fashion_test_x.npy; activation matching reads
// testmodels/fashion_train_x.npy.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/merge"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

func main() {
	pa := flag.String("a", "testmodels/transformer_s0.onnx", "model A")
	pb := flag.String("b", "testmodels/transformer_s1.onnx", "model B")
	steps := flag.Int("steps", 11, "points on each path")
	seed := flag.Uint64("seed", 0, "weight matching seed")
	flag.Parse()
	a, err := onnx.Load(*pa)
	check(err)
	b, err := onnx.Load(*pb)
	check(err)
	ga, err := graph.Analyze(a)
	check(err)
	test, err := eval.Load("testmodels/fashion_test_x.npy", "testmodels/fashion_test_y.npy")
	check(err)
	fit, err := eval.Load("testmodels/fashion_train_x.npy", "")
	check(err)

	naive := path(a, b, ga, permute.Identity(ga), test, *steps)
	fmt.Printf("naive: barrier %.3f, midpoint accuracy %.3f\n\n", naive.barrier, naive.mid)
	fmt.Println("| method | heads | residual stream | barrier | midpoint accuracy |")
	fmt.Println("|---|---|---|---|---|")
	for _, method := range []string{"weight", "activation", "hybrid"} {
		for _, heads := range []bool{false, true} {
			for _, residual := range []bool{true, false} {
				g := restrict(ga, heads, residual)
				var perms permute.Perms
				if method != "weight" {
					perms, err = activation.Match(a, b, g, fit, activation.Options{})
					check(err)
				}
				if method != "activation" {
					res, err := match.Weights(a, b, g, match.Options{Seed: *seed, Init: perms})
					check(err)
					perms = res.Perms
				}
				r := path(a, b, g, perms, test, *steps)
				hs, rs := "frozen", "permuted"
				if heads {
					hs = "head-aware"
				}
				if !residual {
					rs = "fixed"
				}
				fmt.Printf("| %s | %s | %s | %.3f | %.3f |\n", method, hs, rs, r.barrier, r.mid)
			}
		}
	}
}

// restrict returns ga without its block groups (heads false) and without
// its largest group (residual false).
func restrict(ga *graph.Analysis, heads, residual bool) *graph.Analysis {
	largest := 0
	for i, g := range ga.Groups {
		if len(g.Weights) > len(ga.Groups[largest].Weights) {
			largest = i
		}
	}
	return ga.Restrict(func(g graph.Group) bool {
		return (heads || g.Blocks < 2) && (residual || g.ID != largest)
	})
}

type result struct{ barrier, mid float64 }

// path evaluates the interpolation between a and b aligned by perms.
func path(a, b *onnx.Model, ga *graph.Analysis, perms permute.Perms, test *eval.Dataset, steps int) result {
	var loss, acc []float64
	for i := 0; i < steps; i++ {
		l := float64(i) / float64(steps-1)
		m, err := merge.Aligned([]*onnx.Model{a, b}, ga, []permute.Perms{permute.Identity(ga), perms}, []float64{1 - l, l})
		check(err)
		sess, err := infer.NewSession(m)
		check(err)
		res, err := eval.Run(sess, test, 256, nil)
		check(err)
		loss, acc = append(loss, res.Loss), append(acc, res.Accuracy)
	}
	ends := (loss[0] + loss[len(loss)-1]) / 2
	barrier := math.Inf(-1)
	for _, v := range loss {
		barrier = math.Max(barrier, v-ends)
	}
	return result{barrier, acc[len(acc)/2]}
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
