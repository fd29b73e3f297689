package soup

import (
	"math"
	"slices"
	"testing"
)

// sliceSource is a tensorSource over vectors in memory.
type sliceSource struct {
	base   []float64
	models [][]float64
	reads  int
}

func (s *sliceSource) numModels() int { return len(s.models) }
func (s *sliceSource) name() string   { return "w" }
func (s *sliceSource) readBase(dst []float64) error {
	copy(dst, s.base)
	return nil
}
func (s *sliceSource) readModel(i int, dst []float64) error {
	s.reads++
	copy(dst, s.models[i])
	return nil
}

func near(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol {
			t.Fatalf("%s: [%d] = %v, want %v (all: %v vs %v)", what, i, got[i], want[i], got, want)
		}
	}
}

func gta(t *testing.T, src *sliceSource, o gtaOptions) []float64 {
	t.Helper()
	out := make([]float64, len(src.base))
	if err := gtaInto(out, src, o, &scratch{}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLinearHandComputed(t *testing.T) {
	src := &sliceSource{models: [][]float64{{1, 2}, {3, 6}}}
	out := make([]float64, 2)
	if err := linearInto(out, src, []float64{1, 3}, true, &scratch{}); err != nil {
		t.Fatal(err)
	}
	near(t, "normalized", out, []float64{2.5, 5}, 1e-15) // (1·1+3·3)/4, (2+18)/4
	if err := linearInto(out, src, []float64{1, 3}, false, &scratch{}); err != nil {
		t.Fatal(err)
	}
	near(t, "not normalized", out, []float64{10, 20}, 1e-15)
}

func TestTaskArithmeticHandComputed(t *testing.T) {
	src := &sliceSource{base: []float64{1, 1, 1}, models: [][]float64{{2, 0, 1}, {1, 3, -1}}}
	// deltas (1,-1,0) and (0,2,-2); base + 0.5·(1·d1 + 2·d2) = 1 + 0.5·(1,3,-4)
	got := gta(t, src, gtaOptions{weights: []float64{1, 2}, densities: []float64{1, 1}, lambda: 0.5})
	near(t, "task arithmetic", got, []float64{1.5, 2.5, -1}, 1e-15)
}

func TestTIESHandComputed(t *testing.T) {
	// deltas: d1 = (3, -1, 0.5, 2), d2 = (-1, -2, 0.1, 4)
	src := &sliceSource{base: []float64{0, 0, 0, 0}, models: [][]float64{{3, -1, 0.5, 2}, {-1, -2, 0.1, 4}}}
	// density 0.5 keeps 2 of 4: d1 → (3, 0, 0, 2), d2 → (0, -2, 0, 4).
	// Elected sign of the sum (3, -2, 0, 6): +, -, + (tie), +.
	// Disjoint mean: (3/1, -2/1, 0 (no entry agrees), (2+4)/2).
	got := gta(t, src, gtaOptions{weights: []float64{1, 1}, densities: []float64{0.5, 0.5}, sparsify: "magnitude", consensus: true, normalize: true, lambda: 1})
	near(t, "ties", got, []float64{3, -2, 0, 3}, 1e-15)
}

func TestTIESDensityOneAgreeingIsMean(t *testing.T) {
	base := []float64{0.5, -1, 2, 0, 3}
	d1 := []float64{0.1, -0.2, 0.3, 1, -4}
	d2 := []float64{0.3, -0.1, 0.2, 2, -1}
	src := &sliceSource{base: base}
	for _, d := range [][]float64{d1, d2} {
		m := slices.Clone(base)
		for i := range m {
			m[i] += d[i]
		}
		src.models = append(src.models, m)
	}
	got := gta(t, src, gtaOptions{weights: []float64{1, 1}, densities: []float64{1, 1}, sparsify: "magnitude", consensus: true, normalize: true, lambda: 1})
	want := make([]float64, len(base))
	for i := range want {
		want[i] = base[i] + (d1[i]+d2[i])/2
	}
	near(t, "ties density 1", got, want, 1e-12)
}

func TestDAREDensityOneIsTaskArithmetic(t *testing.T) {
	src := &sliceSource{base: []float64{1, 2, 3}, models: [][]float64{{1.5, 1, 3}, {0, 2.5, 4}}}
	o := gtaOptions{weights: []float64{0.3, 0.7}, densities: []float64{1, 1}, lambda: 0.9, seed: 7}
	ta := gta(t, src, o)
	o.sparsify = "random"
	near(t, "dare_linear density 1", gta(t, src, o), ta, 0)
}

func TestDAREDropsAndRescales(t *testing.T) {
	n := 20000
	base := make([]float64, n)
	m := make([]float64, n)
	for i := range m {
		m[i] = 1
	}
	src := &sliceSource{base: base, models: [][]float64{m}}
	o := gtaOptions{weights: []float64{1}, densities: []float64{0.25}, sparsify: "random", lambda: 1, seed: 3}
	got := gta(t, src, o)
	kept, sum := 0, 0.0
	for _, v := range got {
		if v != 0 {
			kept++
			if v != 4 {
				t.Fatalf("kept entry %v, want 1/density = 4", v)
			}
		}
		sum += v
	}
	if f := float64(kept) / float64(n); math.Abs(f-0.25) > 0.02 {
		t.Errorf("kept %.3f of the entries, want about 0.25", f)
	}
	if mean := sum / float64(n); math.Abs(mean-1) > 0.08 {
		t.Errorf("mean after rescaling %.3f, want about 1 (unbiased)", mean)
	}
	// Seeded: the same seed drops the same entries, another seed others.
	near(t, "same seed", gta(t, src, o), got, 0)
	o.seed = 4
	if slices.Equal(gta(t, src, o), got) {
		t.Error("seeds 3 and 4 dropped the same entries")
	}
}

func TestTrimMagnitudeTiesByIndex(t *testing.T) {
	v := []float64{1, -2, 2, 0.5, -2}
	trimMagnitude(v, 0.4, make([]float64, len(v))) // k = 2 of the three |2|: the first two
	near(t, "trim", v, []float64{0, -2, 2, 0, 0}, 0)
}

func TestKthLargestBruteForce(t *testing.T) {
	vals := []float64{5, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3}
	sorted := slices.Clone(vals)
	slices.Sort(sorted)
	for k := 1; k <= len(vals); k++ {
		if got, want := kthLargest(slices.Clone(vals), k), sorted[len(vals)-k]; got != want {
			t.Errorf("k=%d: got %v, want %v", k, got, want)
		}
	}
}

func TestSlerpEndpointsAndHalfway(t *testing.T) {
	a := []float64{1, 0, 0.5}
	b := []float64{0, 2, -0.3}
	out := make([]float64, 3)
	for _, c := range []struct {
		t    float64
		want []float64
	}{{0, a}, {1, b}} {
		slerpInto(out, a, b, c.t)
		near(t, "endpoint", out, c.want, 1e-12)
	}
	// Orthogonal unit vectors: halfway is (1,1)/√2 on the arc.
	slerpInto(out[:2], []float64{1, 0}, []float64{0, 1}, 0.5)
	near(t, "halfway", out[:2], []float64{math.Sqrt2 / 2, math.Sqrt2 / 2}, 1e-12)
	// Colinear: linear interpolation.
	slerpInto(out[:2], []float64{1, 1}, []float64{2, 2}, 0.25)
	near(t, "colinear", out[:2], []float64{1.25, 1.25}, 1e-12)
}

func TestModelStock(t *testing.T) {
	base := []float64{1, 1, 1, 1}
	ft := []float64{2, 0, 1, 3}
	src := &sliceSource{base: base, models: [][]float64{ft, ft, ft}}
	out := make([]float64, 4)
	if err := modelStockInto(out, src, 1, &scratch{}); err != nil {
		t.Fatal(err)
	}
	near(t, "identical fine-tunes", out, ft, 1e-12)
	// Orthogonal task vectors (cos 0): t = 0, the base.
	src = &sliceSource{base: base, models: [][]float64{{2, 1, 1, 1}, {1, 2, 1, 1}}}
	if err := modelStockInto(out, src, 1, &scratch{}); err != nil {
		t.Fatal(err)
	}
	near(t, "orthogonal", out, base, 1e-12)
	// Two task vectors at 60° (cos ½): t = 2·½/(1+½) = 2/3 of the mean.
	src = &sliceSource{base: []float64{0, 0}, models: [][]float64{{1, 0}, {0.5, math.Sqrt(3) / 2}}}
	if err := modelStockInto(out[:2], src, 1, &scratch{}); err != nil {
		t.Fatal(err)
	}
	near(t, "60 degrees", out[:2], []float64{2.0 / 3 * 0.75, 2.0 / 3 * math.Sqrt(3) / 4}, 1e-12)
	// Filter-wise: row 0 identical (t = 1), row 1 orthogonal (t = 0).
	src = &sliceSource{base: []float64{0, 0, 0, 0}, models: [][]float64{{1, 1, 1, 0}, {1, 1, 0, 1}}}
	if err := modelStockInto(out, src, 2, &scratch{}); err != nil {
		t.Fatal(err)
	}
	near(t, "filter-wise", out, []float64{1, 1, 0, 0}, 1e-12)
	// Opposite task vectors (cos −1, N = 2): 1 + (N−1)·cos = 0; the base, not NaN.
	src = &sliceSource{base: []float64{1, 1}, models: [][]float64{{2, 1}, {0, 1}}}
	if err := modelStockInto(out[:2], src, 1, &scratch{}); err != nil {
		t.Fatal(err)
	}
	near(t, "opposite", out[:2], []float64{1, 1}, 0)
}
