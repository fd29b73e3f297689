package match

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// batchNormStatistics returns the (node, input) of every BatchNormalization
// running mean and variance that the analysis permutes.
func batchNormStatistics(t *testing.T, ga *graph.Analysis) []graph.WeightSite {
	t.Helper()
	var stats []graph.WeightSite
	for _, g := range ga.Groups {
		for _, s := range g.Weights {
			if s.Statistic {
				stats = append(stats, s)
			}
		}
	}
	if len(stats) == 0 {
		t.Fatal("no BatchNormalization statistics among the weight sites")
	}
	return stats
}

// TestStatisticsNotScored: as in the paper, weight matching scores learned
// weights only. Rescaling and shifting B's BatchNorm running means and
// variances changes neither the objective nor the permutations found, and
// permute.Apply still permutes them with their channels (so the aligned model
// computes what B computes, checked by ONNX Runtime).
func TestStatisticsNotScored(t *testing.T) {
	ort := ortref.Require(t)
	for _, name := range []string{"cnn_bn", "resnet"} {
		t.Run(name, func(t *testing.T) {
			a, ga := testkit.LoadAnalyze(t, "../testmodels/"+name+"_s0.onnx")
			b, _ := testkit.LoadAnalyze(t, "../testmodels/"+name+"_s1.onnx")
			stats := batchNormStatistics(t, ga)
			for _, s := range stats {
				if s.Input != 3 && s.Input != 4 {
					t.Errorf("input %d of node %d marked as a statistic", s.Input, s.Node)
				}
			}
			res, err := Weights(a, b, ga, Options{Seed: 0})
			if err != nil {
				t.Fatal(err)
			}
			changed := b.Clone()
			r := rand.New(rand.NewPCG(1, 2))
			w := graph.NewSources(changed)
			for _, s := range stats {
				tensor := sitelayout.UseTensor(changed, w, s)
				v, err := changed.Float32s(tensor)
				if err != nil {
					t.Fatal(err)
				}
				for i := range v {
					v[i] = v[i]*float32(1+9*r.Float64()) + float32(r.NormFloat64())
					if s.Input == 4 {
						v[i] = max(v[i], 0) + 0.5 // a variance
					}
				}
				if err := changed.SetFloat32s(tensor, v); err != nil {
					t.Fatal(err)
				}
			}
			// Both starts: the signature start must not read the statistics
			// either (the default start of cnn_bn is the identity).
			for _, start := range []Start{StartSignature, StartIdentity} {
				res1, err := Weights(a, b, ga, Options{Start: start})
				if err != nil {
					t.Fatal(err)
				}
				res2, err := Weights(a, changed, ga, Options{Start: start})
				if err != nil {
					t.Fatal(err)
				}
				if res2.ObjectiveBefore != res1.ObjectiveBefore || res2.ObjectiveAfter != res1.ObjectiveAfter {
					t.Errorf("%v start: objective depends on B's running statistics: %v -> %v before, %v -> %v after",
						start, res1.ObjectiveBefore, res2.ObjectiveBefore, res1.ObjectiveAfter, res2.ObjectiveAfter)
				}
				for g := range res1.Perms {
					if !slices.Equal(res1.Perms[g], res2.Perms[g]) {
						t.Errorf("%v start, group %d: permutation depends on B's running statistics", start, g)
					}
				}
			}

			// permute.Apply moves the statistics with their channels.
			pathB := filepath.Join(t.TempDir(), "b.onnx")
			if err := b.Save(pathB); err != nil {
				t.Fatal(err)
			}
			aligned := b.Clone()
			if err := permute.Apply(aligned, ga, res.Perms); err != nil {
				t.Fatal(err)
			}
			movedStats := 0
			for _, s := range stats {
				before := floatsAt(t, b, s)
				after := floatsAt(t, aligned, s)
				p := res.Perms[groupOf(ga, s)]
				for i, j := range p {
					if after[i] != before[j] {
						t.Fatalf("statistic %q: unit %d is not B's unit %d", s.Tensor, i, j)
					}
				}
				if !sitelayout.IsIdentity(p) {
					movedStats++
				}
			}
			if movedStats == 0 {
				t.Error("no statistic was permuted: the test shows nothing")
			}
			out := filepath.Join(t.TempDir(), "aligned.onnx")
			if err := aligned.Save(out); err != nil {
				t.Fatal(err)
			}
			if err := ort.CompareModels(pathB, out, testkit.RandomInputs(t, a, 4, 3), 1e-4, 1e-3); err != nil {
				t.Errorf("aligned model computes something else: %v", err)
			}
		})
	}
}

// floatsAt returns the values of the weight that site s reads in m.
func floatsAt(t *testing.T, m *onnx.Model, s graph.WeightSite) []float32 {
	t.Helper()
	v, err := m.Float32s(sitelayout.UseTensor(m, graph.NewSources(m), s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// groupOf returns the index of the group that holds site s.
func groupOf(ga *graph.Analysis, s graph.WeightSite) int {
	for g, grp := range ga.Groups {
		if slices.Contains(grp.Weights, s) {
			return g
		}
	}
	return -1
}
