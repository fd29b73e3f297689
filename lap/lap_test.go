package lap_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

// generator makes an n×n cost matrix from a seed. exact means the entries
// are small integers, so the solver's arithmetic is exact and totals must
// match the brute force bit for bit.
type generator struct {
	name  string
	exact bool
	gen   func(n int, seed uint64) []float64
}

var generators = []generator{
	{"uniform", false, laptest.Uniform},
	{"ints0to3", true, func(n int, seed uint64) []float64 { return laptest.Integers(n, 0, 3, seed) }},
	{"ints-50to50", true, func(n int, seed uint64) []float64 { return laptest.Integers(n, -50, 50, seed) }},
	{"binary", true, func(n int, seed uint64) []float64 { return laptest.Integers(n, 0, 1, seed) }},
	{"constant", true, func(n int, seed uint64) []float64 {
		c := make([]float64, n*n)
		for i := range c {
			c[i] = float64(seed%7) - 3
		}
		return c
	}},
	{"identity-optimal", false, func(n int, seed uint64) []float64 {
		// Off-diagonal entries in [0,1), diagonal in [1,2): the
		// identity beats every other permutation.
		c := laptest.Uniform(n, seed)
		for i := 0; i < n; i++ {
			c[i*n+i]++
		}
		return c
	}},
	{"normal-scaled", false, func(n int, seed uint64) []float64 {
		r := laptest.NewRand(seed)
		c := make([]float64, n*n)
		for i := range c {
			c[i] = 1e6 * r.NormFloat64()
		}
		return c
	}},
	{"rank1", false, func(n int, seed uint64) []float64 {
		// Outer products are degenerate: many near-ties.
		r := laptest.NewRand(seed)
		a, b := make([]float64, n), make([]float64, n)
		for i := range a {
			a[i], b[i] = r.Float64(), r.Float64()
		}
		c := make([]float64, n*n)
		for i := range a {
			for j := range b {
				c[i*n+j] = a[i] * b[j]
			}
		}
		return c
	}},
	{"weight-matching", false, func(n int, seed uint64) []float64 {
		c, _ := laptest.WeightMatching(n, 2*n, 1.5, seed)
		return c
	}},
}

// tolerance is the absolute slack allowed between two optimal totals that
// were summed in different orders, or in a dual check.
func tolerance(n int, cost []float64) float64 {
	m := 0.0
	for _, c := range cost {
		m = max(m, math.Abs(c))
	}
	return 1e-9 * max(m, 1) * float64(max(n, 1))
}

// checkSolution checks that perm is a permutation, that total is its total,
// that the duals certify it, and that total equals want (within tol unless
// exact).
func checkSolution(t *testing.T, s *lap.Solver, n int, cost []float64, perm []int, total, want float64, exact bool) {
	t.Helper()
	if !laptest.IsPermutation(n, perm) {
		t.Fatalf("not a permutation of 0..%d: %v", n-1, perm)
	}
	tol := tolerance(n, cost)
	if got := laptest.Total(n, cost, perm); got != total {
		t.Fatalf("returned total %v but perm sums to %v", total, got)
	}
	if exact {
		if total != want {
			t.Fatalf("total = %v, want exactly %v (perm %v)", total, want, perm)
		}
	} else if math.Abs(total-want) > tol {
		t.Fatalf("total = %v, want %v (diff %g > tol %g)", total, want, total-want, tol)
	}
	if s != nil {
		u, v := s.Duals()
		if err := laptest.CheckDuals(n, cost, perm, u, v, tol); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAgainstBruteForce(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 10
	}
	var s lap.Solver // reused across sizes: exercises buffer reuse
	for _, g := range generators {
		t.Run(g.name, func(t *testing.T) {
			for n := 1; n <= 8; n++ {
				for seed := range uint64(seeds) {
					cost := g.gen(n, seed*1000+uint64(n))
					want, _ := laptest.BruteForce(n, cost)
					perm, total, err := s.Solve(n, cost)
					if err != nil {
						t.Fatalf("n=%d seed=%d: %v", n, seed, err)
					}
					checkSolution(t, &s, n, cost, perm, total, want, g.exact)
				}
			}
		})
	}
}

func TestIdentityOptimalGivesIdentity(t *testing.T) {
	for _, n := range []int{1, 2, 5, 50, 300} {
		cost := laptest.Uniform(n, uint64(n))
		for i := 0; i < n; i++ {
			cost[i*n+i] += 1
		}
		perm, _, err := lap.Solve(n, cost)
		if err != nil {
			t.Fatal(err)
		}
		for i, j := range perm {
			if i != j {
				t.Fatalf("n=%d: perm[%d] = %d, want identity", n, i, j)
			}
		}
	}
}

func TestPlantedPermutationRecovered(t *testing.T) {
	// With little noise the planted permutation is the unique optimum.
	for _, n := range []int{3, 64, 257} {
		cost, planted := laptest.WeightMatching(n, n, 0.1, 7)
		perm, _, err := lap.Solve(n, cost)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(perm, planted) {
			t.Fatalf("n=%d: planted permutation not recovered", n)
		}
	}
}

func TestEmptyAndOne(t *testing.T) {
	perm, total, err := lap.Solve(0, nil)
	if err != nil || perm == nil || len(perm) != 0 || total != 0 {
		t.Fatalf("Solve(0, nil) = %v, %v, %v; want [], 0, nil", perm, total, err)
	}
	perm, total, err = lap.Solve(0, []float64{})
	if err != nil || len(perm) != 0 || total != 0 {
		t.Fatalf("Solve(0, []) = %v, %v, %v", perm, total, err)
	}
	perm, total, err = lap.Solve(1, []float64{-2.5})
	if err != nil || !slices.Equal(perm, []int{0}) || total != -2.5 {
		t.Fatalf("Solve(1, [-2.5]) = %v, %v, %v", perm, total, err)
	}
}

func TestErrors(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name string
		n    int
		cost []float64
		want error
	}{
		{"negative n", -1, nil, lap.ErrShape},
		{"too short", 2, []float64{1, 2, 3}, lap.ErrShape},
		{"too long", 2, []float64{1, 2, 3, 4, 5}, lap.ErrShape},
		{"non-square", 3, make([]float64, 6), lap.ErrShape},
		{"zero with data", 0, []float64{1}, lap.ErrShape},
		{"NaN", 2, []float64{1, 2, nan, 4}, lap.ErrNonFinite},
		{"+Inf", 2, []float64{1, inf, 3, 4}, lap.ErrNonFinite},
		{"-Inf", 2, []float64{-inf, 2, 3, 4}, lap.ErrNonFinite},
		{"NaN alone", 1, []float64{nan}, lap.ErrNonFinite},
		{"NaN last", 3, []float64{0, 0, 0, 0, 0, 0, 0, 0, nan}, lap.ErrNonFinite},
		{"huge", 2, []float64{1, 2, 3, math.MaxFloat64}, lap.ErrRange},
		{"above sqrt", 2, []float64{1, 2, 3, 1e155}, lap.ErrRange},
		{"huge negative", 2, []float64{1, -1e200, 3, 4}, lap.ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			perm, _, err := lap.Solve(tt.n, tt.cost)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if perm != nil {
				t.Fatalf("perm = %v on error, want nil", perm)
			}
			// The warm path validates entries in its own loop.
			if tt.n > 0 {
				var s lap.Solver
				_, _, err := s.SolveWarm(tt.n, tt.cost, nil, make([]float64, tt.n))
				if !errors.Is(err, tt.want) {
					t.Fatalf("warm: err = %v, want %v", err, tt.want)
				}
			}
		})
	}
}

func TestWarmStartErrors(t *testing.T) {
	cost := []float64{1, 2, 3, 4}
	tests := []struct {
		name string
		perm []int
		v    []float64
	}{
		{"short perm", []int{0}, nil},
		{"repeated perm", []int{1, 1}, nil},
		{"out of range perm", []int{0, 2}, nil},
		{"short duals", nil, []float64{0}},
		{"NaN dual", []int{0, 1}, []float64{0, math.NaN()}},
		{"Inf dual", nil, []float64{math.Inf(-1), 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s lap.Solver
			if _, _, err := s.SolveWarm(2, cost, tt.perm, tt.v); !errors.Is(err, lap.ErrWarmStart) {
				t.Fatalf("err = %v, want ErrWarmStart", err)
			}
		})
	}
	// Out-of-range duals are ignored, not an error.
	var s lap.Solver
	perm, total, err := s.SolveWarm(2, cost, nil, []float64{1e307, 0})
	if err != nil || total != 5 || !slices.Equal(perm, []int{0, 1}) && !slices.Equal(perm, []int{1, 0}) {
		t.Fatalf("huge duals: %v, %v, %v", perm, total, err)
	}
}

func TestDualsBeforeSolve(t *testing.T) {
	var s lap.Solver
	if u, v := s.Duals(); u != nil || v != nil {
		t.Fatal("Duals before any solve should be nil")
	}
	if _, _, err := s.Solve(2, []float64{1}); err == nil {
		t.Fatal("want error")
	}
	if u, v := s.Duals(); u != nil || v != nil {
		t.Fatal("Duals after a failed solve should be nil")
	}
}

func TestDeterministic(t *testing.T) {
	for _, g := range generators {
		n := 40
		cost := g.gen(n, 99)
		var s1, s2 lap.Solver
		p1, t1, err1 := s1.Solve(n, cost)
		// s2 first solves something else, so its buffers hold stale data.
		if _, _, err := s2.Solve(n, laptest.Uniform(n, 5)); err != nil {
			t.Fatal(err)
		}
		p2, t2, err2 := s2.Solve(n, cost)
		if err1 != nil || err2 != nil || t1 != t2 || !slices.Equal(p1, p2) {
			t.Fatalf("%s: two solves differ: %v/%v, %v/%v", g.name, t1, t2, err1, err2)
		}
	}
}

func TestInputNotModified(t *testing.T) {
	cost := laptest.Uniform(50, 3)
	orig := slices.Clone(cost)
	var s lap.Solver
	if _, _, err := s.Solve(50, cost); err != nil {
		t.Fatal(err)
	}
	_, v := s.Duals()
	pv := slices.Clone(v)
	if _, _, err := s.SolveWarm(50, cost, nil, v); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cost, orig) || !slices.Equal(v, pv) {
		t.Fatal("Solve modified its input")
	}
}

// perturb returns a copy of cost with a fraction frac of its entries moved
// by up to ±scale (or rounded to integers when ints is set).
func perturb(cost []float64, frac, scale float64, ints bool, seed uint64) []float64 {
	r := laptest.NewRand(seed)
	out := slices.Clone(cost)
	for i := range out {
		if r.Float64() < frac {
			delta := (2*r.Float64() - 1) * scale
			if ints {
				delta = math.Round(delta)
			}
			out[i] += delta
		}
	}
	return out
}

func TestWarmStartMatchesCold(t *testing.T) {
	type warmKind struct {
		name        string
		perm, duals bool
	}
	kinds := []warmKind{{"perm+duals", true, true}, {"duals", false, true}, {"perm", true, false}}
	sizes := []int{1, 2, 3, 5, 8, 17, 64, 200}
	steps := 6
	if testing.Short() {
		sizes = []int{1, 3, 8, 64}
	}
	for _, g := range generators {
		for _, k := range kinds {
			t.Run(g.name+"/"+k.name, func(t *testing.T) {
				for _, n := range sizes {
					for _, frac := range []float64{0.01, 0.2, 1} {
						cost := g.gen(n, uint64(n)*7+1)
						scale := 0.05 * (tolerance(n, cost) / 1e-9 / float64(max(n, 1)))
						var warm, cold lap.Solver
						perm, _, err := warm.Solve(n, cost)
						if err != nil {
							t.Fatal(err)
						}
						for step := range steps {
							cost = perturb(cost, frac, scale, g.exact, uint64(step*31+n))
							var pp []int
							var pv []float64
							if k.perm {
								pp = perm
							}
							if k.duals {
								_, pv = warm.Duals()
							}
							wp, wt, err := warm.SolveWarm(n, cost, pp, pv)
							if err != nil {
								t.Fatal(err)
							}
							_, ct, err := cold.Solve(n, cost)
							if err != nil {
								t.Fatal(err)
							}
							checkSolution(t, &warm, n, cost, wp, wt, ct, g.exact)
							if n <= 8 {
								want, _ := laptest.BruteForce(n, cost)
								checkSolution(t, nil, n, cost, wp, wt, want, g.exact)
							}
							perm = wp
						}
					}
				}
			})
		}
	}
}

func TestWarmStartFromOptimumIsCheap(t *testing.T) {
	// Re-solving the same matrix from its own duals must not augment.
	n := 300
	cost, _ := laptest.WeightMatching(n, n, laptest.WeightMatchingNoise(n, n), 1)
	var s lap.Solver
	perm, total, err := s.Solve(n, cost)
	if err != nil {
		t.Fatal(err)
	}
	_, v := s.Duals()
	perm2, total2, err := s.SolveWarm(n, cost, perm, v)
	if err != nil {
		t.Fatal(err)
	}
	if total2 != total || !slices.Equal(perm, perm2) {
		t.Fatalf("warm re-solve changed the answer: %v vs %v", total2, total)
	}
	if st := s.Stats(); st.Seeded != n || st.Augmentations != 0 {
		t.Fatalf("warm re-solve did work: %+v", st)
	}
}

// hungarian is an independent O(n³) Hungarian method (Kuhn–Munkres with
// row-by-row potentials, written for this test in the classic 1-indexed
// form): it minimises Σ a[i][p(i)] with a = −cost.
func hungarian(n int, cost []float64) []int {
	a := func(i, j int) float64 { return -cost[(i-1)*n+(j-1)] }
	u := make([]float64, n+1)
	v := make([]float64, n+1)
	p := make([]int, n+1) // p[j]: row matched to column j, 0 if none
	way := make([]int, n+1)
	minv := make([]float64, n+1)
	used := make([]bool, n+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = math.Inf(1)
			used[j] = false
		}
		for {
			used[j0] = true
			i0, delta, j1 := p[j0], math.Inf(1), 0
			for j := 1; j <= n; j++ {
				if used[j] {
					continue
				}
				if cur := a(i0, j) - u[i0] - v[j]; cur < minv[j] {
					minv[j], way[j] = cur, j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= n; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	perm := make([]int, n)
	for j := 1; j <= n; j++ {
		perm[p[j]-1] = j - 1
	}
	return perm
}

func TestLargeAgainstHungarian(t *testing.T) {
	sizes := []int{100, 300}
	if testing.Short() {
		sizes = []int{100}
	}
	var s lap.Solver
	for _, g := range generators {
		for _, n := range sizes {
			t.Run(fmt.Sprintf("%s/n=%d", g.name, n), func(t *testing.T) {
				cost := g.gen(n, uint64(n)+11)
				hp := hungarian(n, cost)
				want := laptest.Total(n, cost, hp)
				perm, total, err := s.Solve(n, cost)
				if err != nil {
					t.Fatal(err)
				}
				checkSolution(t, &s, n, cost, perm, total, want, g.exact)
			})
		}
	}
}

func TestSolverReuseShrinkGrow(t *testing.T) {
	var s lap.Solver
	for _, n := range []int{50, 3, 0, 120, 7, 1, 60} {
		cost := laptest.Integers(n, -9, 9, uint64(n))
		perm, total, err := s.Solve(n, cost)
		if err != nil {
			t.Fatal(err)
		}
		want := laptest.Total(n, cost, hungarian(n, cost))
		checkSolution(t, &s, n, cost, perm, total, want, true)
	}
}
