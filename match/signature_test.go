package match

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
)

// TestRankSignature compares rankSignature with a direct computation
// (truncate to bfloat16, comparison sort, block sums) over lengths around
// the insertion-sort limit and values with ties, signed zeros and
// infinities, and checks that a shuffled row has the same signature bit
// for bit.
func TestRankSignature(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.SmallestNonzeroFloat32, 1, 1, -1}
	for _, n := range []int{1, 2, 7, 64, 65, 100, 255, 256, 257, 1000, 2047, 2048, 5000} {
		for _, withSpecial := range []bool{false, true} {
			x := make([]float32, n)
			for i := range x {
				switch {
				case withSpecial && r.IntN(4) == 0:
					x[i] = special[r.IntN(len(special))]
				case r.IntN(3) == 0:
					x[i] = float32(r.NormFloat64() * 1e-3)
				default:
					x[i] = float32(r.NormFloat64())
				}
			}
			// Reference: the sample (all of a short row), bfloat16
			// truncation, sorted by value (−0 before +0), block means.
			l := min(sigBlocks, n)
			var sample []float32
			if n >= 8*l {
				for _, v := range x {
					if math.Float32bits(v)*0x9e3779b1>>30 == 1 {
						sample = append(sample, v)
					}
				}
			}
			if len(sample) < 2*l {
				sample = slices.Clone(x)
			}
			m := len(sample)
			slices.SortFunc(sample, func(a, b float32) int {
				ta, tb := math.Float32frombits(math.Float32bits(a)&^0xffff), math.Float32frombits(math.Float32bits(b)&^0xffff)
				if c := cmp.Compare(ta, tb); c != 0 || ta != 0 {
					return c
				}
				return cmp.Compare(math.Float32bits(b)>>31, math.Float32bits(a)>>31)
			})
			trunc := make([]float64, m)
			for i, v := range sample {
				trunc[i] = float64(math.Float32frombits(math.Float32bits(v) &^ 0xffff))
			}
			want := make([]float32, l)
			wantEnergy := 0.0
			for b := range want {
				r0, r1 := b*m/l, (b+1)*m/l
				sum := 0.0
				for _, v := range trunc[r0:r1] {
					sum += v
					wantEnergy += v * v
				}
				want[b] = float32(sum / float64(r1-r0) * math.Sqrt(float64(n)/float64(l)))
			}
			wantEnergy *= float64(n) / float64(m)
			keys, tmp := make([]uint16, n), make([]uint16, n)
			got := make([]float32, l)
			energy := rankSignature(x, got, keys, tmp)
			if !testkit.SameFloats(got, want) || !(energy == wantEnergy || math.IsNaN(energy) && math.IsNaN(wantEnergy)) {
				t.Fatalf("n=%d special=%v: signature %v energy %v, want %v energy %v", n, withSpecial, got[:min(l, 8)], energy, want[:min(l, 8)], wantEnergy)
			}
			r.Shuffle(n, func(i, j int) { x[i], x[j] = x[j], x[i] })
			again := make([]float32, l)
			if e := rankSignature(x, again, keys, tmp); !testkit.SameFloats(again, got) || math.Float64bits(e) != math.Float64bits(energy) {
				t.Fatalf("n=%d special=%v: a shuffled row has another signature", n, withSpecial)
			}
		}
	}
}

// BenchmarkRankSignature computes signatures of 512 rows of the
// lengths that sites of small models have: a 3×3 depthwise kernel (9), 1×1
// convolutions and squeeze-excitation layers (48 to 1,152), and a
// 512×512×3×3 convolution's input channels (4,608, sampled).
func BenchmarkRankSignature(b *testing.B) {
	for _, cols := range []int{9, 48, 144, 320, 1152, 4608} {
		b.Run(fmt.Sprint(cols), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			const rows = 512
			src := make([]float32, rows*cols)
			for i := range src {
				src[i] = float32(r.NormFloat64())
			}
			sig := make([]float32, min(sigBlocks, cols))
			keys, tmp := make([]uint16, cols), make([]uint16, cols)
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				for i := 0; i < rows; i++ {
					rankSignature(src[i*cols:(i+1)*cols], sig, keys, tmp)
				}
			}
		})
	}
}

// TestSignatureCostsTakenOver: the descent computes its group costs in the
// memory of the signature start's costs, and gets the same bits as in
// fresh memory.
func TestSignatureCostsTakenOver(t *testing.T) {
	for _, name := range []string{"cnn_bn", "resnet", "transformer"} {
		t.Run(name, func(t *testing.T) {
			a, b, ga := trainedPair(t, name)
			mt := mustMatcher(t, a, b, ga)
			sig, err := mt.signatureStart()
			if err != nil {
				t.Fatal(err)
			}
			spare := slices.Clone(mt.spareCost)
			fresh := mustMatcher(t, a, b, ga)
			reused := 0
			for g := range sig {
				got, want := mt.groupCost(g, sig), fresh.groupCost(g, sig)
				if !slices.Equal(got, want) {
					t.Fatalf("group %d: cost computed in the signature's memory differs from one in fresh memory", g)
				}
				if spare[g] != nil {
					if &got[0] != &spare[g][0] {
						t.Fatalf("group %d: the signature's cost memory was not taken over", g)
					}
					reused++
				}
			}
			if reused == 0 {
				t.Fatal("no signature cost to take over")
			}
		})
	}
}

// TestSignatureStartSameOnAnyThreads builds the signature start with 1, 2
// and 4 threads (groups built concurrently, each on the threads no other
// holds) and checks that the permutations are the same: who computes what
// must not change any result. Under -race it also checks the concurrent
// groups for data races.
func TestSignatureStartSameOnAnyThreads(t *testing.T) {
	for _, name := range []string{"mlp", "cnn_bn", "resnet", "transformer"} {
		t.Run(name, func(t *testing.T) {
			a, b, ga := trainedPair(t, name)
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
			var first [][]int
			for _, procs := range []int{1, 2, 4} {
				runtime.GOMAXPROCS(procs)
				sig, err := mustMatcher(t, a, b, ga).signatureStart()
				if err != nil {
					t.Fatal(err)
				}
				if err := sig.Check(ga); err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = sig
					continue
				}
				for g := range sig {
					if !slices.Equal(sig[g], first[g]) {
						t.Fatalf("GOMAXPROCS %d: group %d's start differs from the one built on 1 thread", procs, g)
					}
				}
			}
		})
	}
}
