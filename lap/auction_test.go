package lap

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

// auctionKinds are matrices on which column reduction seeds few rows, so
// the auction runs: all rows ranking the columns alike (rank one, and rank
// one plus noise as in weight matching's signature start), integers with
// many ties, and the usual uniform and normal entries.
var auctionKinds = []struct {
	name  string
	exact bool // integer entries: totals must agree bit for bit
	gen   func(n int, seed uint64) []float64
}{
	{"rank1", false, func(n int, seed uint64) []float64 { return nearRankOne(n, seed, 0) }},
	{"rank1+noise", false, func(n int, seed uint64) []float64 { return nearRankOne(n, seed, 0.01) }},
	{"rank1-ints", true, func(n int, seed uint64) []float64 {
		c := nearRankOne(n, seed, 0)
		for k := range c {
			c[k] = math.Round(100 * c[k])
		}
		return c
	}},
	{"ints0to3", true, func(n int, seed uint64) []float64 { return laptest.Integers(n, 0, 3, seed) }},
	{"ints-1e9", true, func(n int, seed uint64) []float64 { return laptest.Integers(n, -1e9, 1e9, seed) }},
	{"uniform", false, laptest.Uniform},
	{"normal-1e6", false, func(n int, seed uint64) []float64 {
		r := laptest.NewRand(seed)
		c := make([]float64, n*n)
		for k := range c {
			c[k] = 1e6 * r.NormFloat64()
		}
		return c
	}},
}

// nearRankOne is a_i·b_j plus noise·N(0,1), with a, b in [1, 2).
func nearRankOne(n int, seed uint64, noise float64) []float64 {
	r := laptest.NewRand(seed)
	a, b := make([]float64, n), make([]float64, n)
	for i := range a {
		a[i], b[i] = 1+r.Float64(), 1+r.Float64()
	}
	c := make([]float64, n*n)
	for i := range a {
		for j := range b {
			c[i*n+j] = a[i]*b[j] + noise*r.NormFloat64()
		}
	}
	return c
}

// forceAuction makes every cold solve of n ≥ 2 that column reduction does
// not finish go through the auction, until the returned function restores
// the defaults.
func forceAuction() (restore func()) {
	auctionMin = 2
	return func() { auctionMin = 64 }
}

// checkOptimal checks perm against the optimum want and the solver's duals
// as a certificate of optimality.
func checkOptimal(t *testing.T, s *Solver, n int, cost []float64, perm []int, total, want float64, exact bool) {
	t.Helper()
	if !laptest.IsPermutation(n, perm) {
		t.Fatalf("not a permutation: %v", perm)
	}
	if got := laptest.Total(n, cost, perm); got != total {
		t.Fatalf("returned total %v but perm sums to %v", total, got)
	}
	m := 0.0
	for _, c := range cost {
		m = max(m, math.Abs(c))
	}
	tol := 1e-9 * max(m, 1) * float64(n)
	if exact && total != want || math.Abs(total-want) > tol {
		t.Fatalf("total %v, optimum %v (exact %v)", total, want, exact)
	}
	u, v := s.Duals()
	if err := laptest.CheckDuals(n, cost, perm, u, v, tol); err != nil {
		t.Fatal(err)
	}
}

// The auction start gives the exact optimum: against brute force on every
// matrix of up to 8×8 of each kind (auction forced from n = 2).
func TestAuctionAgainstBruteForce(t *testing.T) {
	defer forceAuction()()
	for _, k := range auctionKinds {
		t.Run(k.name, func(t *testing.T) {
			var s Solver
			ran := 0
			for n := 2; n <= 8; n++ {
				for seed := range uint64(40) {
					cost := k.gen(n, seed*100+uint64(n))
					want, _ := laptest.BruteForce(n, cost)
					perm, total, err := s.Solve(n, cost)
					if err != nil {
						t.Fatal(err)
					}
					checkOptimal(t, &s, n, cost, perm, total, want, k.exact)
					if s.Stats().AuctionPhases > 0 {
						ran++
					}
				}
			}
			if ran == 0 {
				t.Fatal("the auction never ran")
			}
		})
	}
}

// On large matrices the auction start and the JV start reach the same
// optimum (bit for bit on integers); both are certified by their duals,
// with and without the vector kernels, which must give the same solve.
func TestAuctionAgainstJV(t *testing.T) {
	sizes := []int{64, 257, 512}
	if testing.Short() {
		sizes = []int{64, 257}
	}
	kernels := []bool{false}
	if vectorBuild && useAVX2 {
		kernels = append(kernels, true)
	}
	defer func(u bool) { useAVX2, coldAuction = u, true }(useAVX2)
	for _, k := range auctionKinds {
		for _, n := range sizes {
			t.Run(fmt.Sprintf("%s/n=%d", k.name, n), func(t *testing.T) {
				cost := k.gen(n, uint64(n)+7)
				var s Solver
				coldAuction, useAVX2 = false, false
				_, want, err := s.Solve(n, cost)
				if err != nil {
					t.Fatal(err)
				}
				coldAuction = true
				var first []int
				for _, vec := range kernels {
					useAVX2 = vec
					perm, total, err := s.Solve(n, cost)
					if err != nil {
						t.Fatal(err)
					}
					checkOptimal(t, &s, n, cost, perm, total, want, k.exact)
					if first == nil {
						first = perm
					} else if !slices.Equal(first, perm) {
						t.Fatal("vector and portable kernels give different solves")
					}
				}
			})
		}
	}
}

// A matrix whose rows all rank the columns alike is where the auction
// start is for: it must run there, and solve with far fewer row passes
// than the JV start (the reason it exists; a count, not a time).
func TestAuctionRunsOnRankOne(t *testing.T) {
	n := 512
	cost := nearRankOne(n, 1, 0.01)
	var s Solver
	defer func() { coldAuction = true }()
	coldAuction = false
	if _, _, err := s.Solve(n, cost); err != nil {
		t.Fatal(err)
	}
	jv := s.Stats().Entries
	coldAuction = true
	if _, _, err := s.Solve(n, cost); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.AuctionPhases == 0 {
		t.Fatalf("the auction did not run: %+v", st)
	}
	if 2*st.Entries > jv {
		t.Fatalf("auction start read %d entries, JV start %d", st.Entries, jv)
	}
}

// A warm start after an auction-started solve gives the same optimum as a
// cold one on a perturbed matrix: the auction's duals are usable duals.
func TestAuctionDualsWarmStart(t *testing.T) {
	n := 300
	cost := nearRankOne(n, 5, 0.02)
	var s Solver
	perm, _, err := s.Solve(n, cost)
	if err != nil {
		t.Fatal(err)
	}
	_, v := s.Duals()
	r := rand.New(rand.NewPCG(9, 9))
	next := slices.Clone(cost)
	for k := range next {
		next[k] += 1e-4 * r.NormFloat64()
	}
	_, want, err := s.Solve(n, next)
	if err != nil {
		t.Fatal(err)
	}
	p2, total, err := s.SolveWarm(n, next, perm, v)
	if err != nil {
		t.Fatal(err)
	}
	checkOptimal(t, &s, n, next, p2, total, want, false)
}

// A warm start whose prices fit the matrix badly (those of an unrelated
// matrix) continues as an auction from them: the result is still the exact
// optimum, with and without the vector kernels.
func TestWarmStartFallsBackToAuction(t *testing.T) {
	defer func(u bool) { useAVX2 = u }(useAVX2)
	kernels := []bool{false}
	if vectorBuild && useAVX2 {
		kernels = append(kernels, true)
	}
	for _, k := range auctionKinds {
		for _, n := range []int{64, 300} {
			t.Run(fmt.Sprintf("%s/n=%d", k.name, n), func(t *testing.T) {
				cost := k.gen(n, uint64(n)+21)
				other := laptest.Uniform(n, uint64(n)+22)
				var s Solver
				prev, _, err := s.Solve(n, other)
				if err != nil {
					t.Fatal(err)
				}
				_, v := s.Duals()
				coldAuction = false
				_, want, err := s.Solve(n, cost)
				coldAuction = true
				if err != nil {
					t.Fatal(err)
				}
				for _, vec := range kernels {
					useAVX2 = vec
					perm, total, err := s.SolveWarm(n, cost, prev, v)
					if err != nil {
						t.Fatal(err)
					}
					checkOptimal(t, &s, n, cost, perm, total, want, k.exact)
				}
			})
		}
	}
}

// The warm-start auction runs when the old prices seed under half of the
// rows (the case TestWarmStartFallsBackToAuction is for).
func TestWarmStartAuctionRuns(t *testing.T) {
	n := 300
	cost := nearRankOne(n, 3, 0.01)
	var s Solver
	prev, _, err := s.Solve(n, laptest.Uniform(n, 4))
	if err != nil {
		t.Fatal(err)
	}
	_, v := s.Duals()
	if _, _, err := s.SolveWarm(n, cost, prev, v); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.AuctionPhases == 0 {
		t.Fatalf("no auction after a warm start that fits badly: %+v", st)
	}
	// And a cold solve of the same matrix goes to the auction too.
	if _, _, err := s.Solve(n, cost); err != nil {
		t.Fatal(err)
	}
	if cold := s.Stats().AuctionPhases; cold == 0 {
		t.Fatalf("no cold auction on a near-rank-one matrix: %+v", s.Stats())
	}
}
