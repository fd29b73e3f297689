package activation

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/merge"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// capturedStats is the reference for the streamed activation statistics:
// both models run batch by batch with every site captured, and the sums
// and cross products taken with plain float64 loops.
func capturedStats(t *testing.T, a, b *onnx.Model, sites []*channelStats, ds *eval.Dataset, batch int) []*channelStats {
	t.Helper()
	sa, err := infer.NewSession(a)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := infer.NewSession(b)
	if err != nil {
		t.Fatal(err)
	}
	var namesA, namesB []string
	ref := make([]*channelStats, len(sites))
	for k, s := range sites {
		namesA, namesB = append(namesA, s.value), append(namesB, s.valueB)
		ref[k] = newChannelStats(s.value, s.axis, s.channels)
	}
	input := sa.Inputs()[0].Name
	for from := 0; from < ds.N(); from += batch {
		xt, err := ds.Batch(from, min(from+batch, ds.N()))
		if err != nil {
			t.Fatal(err)
		}
		x := map[string]*infer.Tensor{input: xt}
		oa, err := sa.Run(x, infer.Capture(namesA...))
		if err != nil {
			t.Fatal(err)
		}
		ob, err := sb.Run(x, infer.Capture(namesB...))
		if err != nil {
			t.Fatal(err)
		}
		for k, s := range sites {
			ta, tb := oa[s.value], ob[s.valueB]
			r := ref[k]
			outer, inner := 1, 1
			for i, d := range ta.Shape {
				if i < s.axis {
					outer *= d
				} else if i > s.axis {
					inner *= d
				}
			}
			c := s.channels
			for o := 0; o < outer; o++ {
				for i := 0; i < c; i++ {
					for q := 0; q < inner; q++ {
						va := float64(ta.F[(o*c+i)*inner+q])
						vb := float64(tb.F[(o*c+i)*inner+q])
						r.sumA[i] += va
						r.sumB[i] += vb
						r.sqA[i] += va * va
						r.sqB[i] += vb * vb
						for j := 0; j < c; j++ {
							r.cross[i*c+j] += va * float64(tb.F[(o*c+j)*inner+q])
						}
					}
				}
			}
			r.n += float64(outer * inner)
		}
	}
	return ref
}

// sameStats fails unless got's channel sums agree with want's to float64
// rounding (relative to the size of the terms summed) and its cross
// products to the float32 rounding of add's chunks.
func sameStats(got, want *channelStats) error {
	const rel = 1e-9
	if got.n != want.n {
		return fmt.Errorf("%d values, want %d", int(got.n), int(want.n))
	}
	c := want.channels
	for i := 0; i < c; i++ {
		for _, q := range []struct {
			what      string
			got, want float64
			scale     float64
		}{
			{"Σa", got.sumA[i], want.sumA[i], math.Sqrt(want.sqA[i] * want.n)},
			{"Σb", got.sumB[i], want.sumB[i], math.Sqrt(want.sqB[i] * want.n)},
			{"Σa²", got.sqA[i], want.sqA[i], want.sqA[i]},
			{"Σb²", got.sqB[i], want.sqB[i], want.sqB[i]},
		} {
			if math.Abs(q.got-q.want) > rel*q.scale+1e-12 {
				return fmt.Errorf("channel %d: %s %v, want %v", i, q.what, q.got, q.want)
			}
		}
		for j := 0; j < c; j++ {
			// The cross products are float32 sums over chunks of at most
			// terms = max(crossChunk, positions per sample) terms: each
			// chunk's error is below terms·u times its Σ|a·b|, so the
			// total's is below terms·u·√(Σa²·Σb²) (Cauchy–Schwarz, over
			// the terms and the chunks). 28·28 is the most positions per
			// sample of any site in the test models.
			terms := max(crossChunk, 28*28)
			bound := float64(terms)*0x1p-24*math.Sqrt(want.sqA[i]*want.sqB[j]) + 1e-12
			if d := math.Abs(got.cross[i*c+j] - want.cross[i*c+j]); d > bound {
				return fmt.Errorf("channels %d,%d: Σab %v, want %v", i, j, got.cross[i*c+j], want.cross[i*c+j])
			}
		}
	}
	return nil
}

// TestStreamedStatisticsMatchCapture: the activation statistics gathered
// from each value as the two concurrent runs produce it equal float64 sums
// over a capture of every site of a batch (to the float32 rounding of the
// cross products' chunks), on the trained pairs and on a pair of two forms
// of one model (whose values have other names), over batches of unequal
// size; every site's correlations, the BatchNorm outputs' derived from
// their inputs' statistics too, are within 2e-5 of those of the float64
// sums of its own values.
//
// With a chunk of 7 samples, batches of 10 rows and sites of 1 to 784
// positions per sample are split at every kind of boundary.
func TestStreamedStatisticsMatchCapture(t *testing.T) {
	ds := testkit.LoadData(t, "fashion_train_x.npy", "").Head(23)
	defer func(c int) { crossChunk = c }(crossChunk)
	for _, tc := range []struct {
		pair  [2]string
		chunk int
	}{
		{[2]string{"mlp_s0", "mlp_s1"}, 4096}, {[2]string{"cnn_bn_s0", "cnn_bn_s1"}, 4096},
		{[2]string{"resnet_s0", "resnet_s1"}, 4096}, {[2]string{"transformer_s0", "transformer_s1"}, 4096},
		{[2]string{"resnet_s0", "forms/resnet_s0_op13"}, 4096},
		{[2]string{"mlp_s0", "mlp_s1"}, 7}, {[2]string{"resnet_s0", "resnet_s1"}, 7},
	} {
		pair := tc.pair
		crossChunk = tc.chunk
		t.Run(fmt.Sprintf("%s-%s/chunk=%d", pair[0], pair[1], tc.chunk), func(t *testing.T) {
			a, ga := testkit.LoadAnalyze(t, "../testmodels/"+pair[0]+".onnx")
			b, _ := testkit.LoadAnalyze(t, "../testmodels/"+pair[1]+".onnx")
			const batch = 10
			stats, err := activationStats(a, b, ga, ds, Options{Batch: batch})
			if err != nil {
				t.Fatal(err)
			}
			var sites []*channelStats
			for _, gs := range stats {
				sites = append(sites, gs...)
			}
			ref := capturedStats(t, a, b, sites, ds, batch)
			derived, worstMeasured, worstDerived := 0, 0.0, 0.0
			for k, s := range sites {
				worst := &worstMeasured
				if s.from == nil {
					if err := sameStats(s, ref[k]); err != nil {
						t.Errorf("%s: %v", s.value, err)
					}
				} else {
					// Not measured: its correlations come from the site
					// it is a BatchNorm of.
					derived++
					worst = &worstDerived
				}
				// The correlations, against those of the float64 sums of
				// the site's own values.
				got, want := s.correlation(), ref[k].correlation()
				for i := range want {
					*worst = max(*worst, math.Abs(got[i]-want[i]))
					if math.Abs(got[i]-want[i]) > 2e-5 {
						t.Fatalf("%s: correlation %d is %v, float64 sums give %v", s.value, i, got[i], want[i])
					}
				}
			}
			t.Logf("%d sites agree, correlations within %.1g; %d derived from another, within %.1g", len(sites), worstMeasured, derived, worstDerived)
		})
	}
}

// TestSitePairingOrders: the two runs of a batch meet at every site
// whatever order each computes the sites in; in the same order nothing is
// copied (memory stays that of the values being computed), and the sums
// are those of adding each pair directly.
func TestSitePairingOrders(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const sites, c = 6, 3
	values := [2][]*infer.Tensor{}
	for side := range values {
		for k := 0; k < sites; k++ {
			x := make([]float32, 4*c*5)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			values[side] = append(values[side], infer.NewFloat32([]int{4, c, 5}, x))
		}
	}
	direct := make([]*channelStats, sites)
	for k := range direct {
		direct[k] = newChannelStats(fmt.Sprint(k), 1, c)
		if err := direct[k].add(values[0][k].Shape, values[0][k].F, values[1][k].F); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name       string
		orderA     []int
		orderB     []int
		mayCopy    bool
		missingInB int // a site b never computes, or -1
	}{
		{"same order", []int{0, 1, 2, 3, 4, 5}, []int{0, 1, 2, 3, 4, 5}, false, -1},
		{"reversed", []int{0, 1, 2, 3, 4, 5}, []int{5, 4, 3, 2, 1, 0}, true, -1},
		{"shuffled", []int{2, 0, 1, 5, 3, 4}, []int{1, 3, 0, 4, 2, 5}, true, -1},
		{"b lacks a site", []int{0, 1, 2, 3, 4, 5}, []int{0, 1, 3, 4, 5}, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for rep := 0; rep < 20; rep++ { // several interleavings
				stats := make([]*channelStats, sites)
				for k := range stats {
					stats[k] = newChannelStats(fmt.Sprint(k), 1, c)
				}
				p := newSitePairing(stats)
				var wg sync.WaitGroup
				for side, order := range [][]int{tc.orderA, tc.orderB} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer p.finish(side)
						for _, k := range order {
							if err := p.arrive(side, k, values[side][k]); err != nil {
								t.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				if !tc.mayCopy && p.copied != 0 {
					t.Fatalf("%d values copied with both runs in the same order", p.copied)
				}
				for k := range stats {
					if k == tc.missingInB {
						if p.added[k] == 2 {
							t.Fatalf("site %d counted as added though b never computed it", k)
						}
						continue
					}
					if p.added[k] != 2 {
						t.Fatalf("site %d not added", k)
					}
					if err := sameStats(stats[k], direct[k]); err != nil {
						t.Fatalf("site %d: %v", k, err)
					}
				}
			}
		})
	}
}

// TestRepairMeetsTargets: after REPAIR's single pass, every corrected
// layer output of the merged model, measured again by the interpreter on
// the same data with the folded corrections, has the per-channel mean and
// standard deviation that the repair interpolated from the endpoints.
func TestRepairMeetsTargets(t *testing.T) {
	fit := testkit.LoadData(t, "fashion_train_x.npy", "")
	for _, name := range []string{"mlp32", "cnn_bn", "resnet"} {
		t.Run(name, func(t *testing.T) {
			a, ga := testkit.LoadAnalyze(t, "../testmodels/"+name+"_s0.onnx")
			b, _ := testkit.LoadAnalyze(t, "../testmodels/"+name+"_s1.onnx")
			res, err := match.Weights(a, b, ga, match.Options{})
			if err != nil {
				t.Fatal(err)
			}
			perms := []permute.Perms{permute.Identity(ga), res.Perms}
			const lambda = 0.4
			mid, err := merge.Aligned([]*onnx.Model{a, b}, ga, perms, []float64{1 - lambda, lambda})
			if err != nil {
				t.Fatal(err)
			}
			ra, rb := a.Clone(), b.Clone()
			if err := permute.Apply(ra, ga, perms[0]); err != nil {
				t.Fatal(err)
			}
			if err := permute.Apply(rb, ga, perms[1]); err != nil {
				t.Fatal(err)
			}
			rep, err := PrepareRepair(ra, rb, ga, fit, Options{Batch: 256})
			if err != nil {
				t.Fatal(err)
			}
			before, _, err := rep.measure(mid, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Apply(mid, lambda); err != nil {
				t.Fatal(err)
			}
			mean, std, err := rep.measure(mid, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Deviation from the target in units of the target's standard
			// deviation; before the repair it is large.
			var worstMean, worstStd, worstBefore float64
			for i, s := range rep.sites {
				for ch := range mean[i] {
					mt := (1-lambda)*rep.meanA[i][ch] + lambda*rep.meanB[i][ch]
					st := (1-lambda)*rep.stdA[i][ch] + lambda*rep.stdB[i][ch]
					unit := st + 1e-3
					dm, ds := math.Abs(mean[i][ch]-mt)/unit, math.Abs(std[i][ch]-st)/unit
					worstMean, worstStd = max(worstMean, dm), max(worstStd, ds)
					worstBefore = max(worstBefore, math.Abs(before[i][ch]-mt)/unit)
					if dm > 0.02 || ds > 0.02 {
						t.Errorf("%s channel %d: mean %.4f std %.4f, target %.4f and %.4f", s.value, ch, mean[i][ch], std[i][ch], mt, st)
					}
				}
			}
			t.Logf("%d sites: worst |mean - target| %.2g σ_t (%.2g before REPAIR), worst |std - target| %.2g σ_t", len(rep.sites), worstMean, worstBefore, worstStd)
		})
	}
}

// TestResetBatchNormDeterministic: on a model whose BatchNorm nodes share
// their statistics tensors (so the reset gives each its own copies), two
// resets write the same bytes.
func TestResetBatchNormDeterministic(t *testing.T) {
	fit := testkit.LoadData(t, "fashion_train_x.npy", "").Head(64)
	m, _ := testkit.LoadAnalyze(t, "../testmodels/forms/resnet_init.onnx")
	var first []byte
	for run := 0; run < 3; run++ {
		c := m.Clone()
		if err := ResetBatchNorm(c, fit, Options{Batch: 32}); err != nil {
			t.Fatal(err)
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c.Proto)
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Fatalf("reset %d wrote other bytes than the first", run)
		}
	}
}
