package laptest

import (
	"math"
	"testing"
)

func TestMulABt(t *testing.T) {
	for _, sh := range [][3]int{{1, 1, 1}, {5, 7, 3}, {64, 65, 300}, {130, 3, 257}, {9, 130, 513}} {
		m, n, d := sh[0], sh[1], sh[2]
		r := NewRand(uint64(m*n + d))
		a, b := make([]float64, m*d), make([]float64, n*d)
		for i := range a {
			a[i] = r.NormFloat64()
		}
		for i := range b {
			b[i] = r.NormFloat64()
		}
		c := MulABt(a, b, m, n, d)
		for i := 0; i < m; i++ {
			for k := 0; k < n; k++ {
				want := 0.0
				for t := 0; t < d; t++ {
					want += a[i*d+t] * b[k*d+t]
				}
				if math.Abs(c[i*n+k]-want) > 1e-9*math.Sqrt(float64(d)) {
					t.Fatalf("%v: C[%d][%d] = %v, want %v", sh, i, k, c[i*n+k], want)
				}
			}
		}
	}
}

func TestBruteForce(t *testing.T) {
	cost := []float64{
		1, 2, 3,
		2, 4, 6,
		3, 6, 9.5,
	}
	best, perm := BruteForce(3, cost)
	if best != 1+4+9.5 || perm[0] != 0 || perm[1] != 1 || perm[2] != 2 {
		t.Fatalf("BruteForce = %v, %v", best, perm)
	}
	// All 4! = 24 permutations are visited: a unique best at the last
	// one Heap's algorithm reaches is found.
	n := 4
	seen := map[[4]int]bool{}
	c := make([]float64, n*n)
	p := []int{0, 1, 2, 3}
	visit(p, 0, func(q []int) { seen[[4]int(q)] = true })
	if len(seen) != 24 {
		t.Fatal("test helper broken")
	}
	for q := range seen {
		for i := range c {
			c[i] = 0
		}
		for i, j := range q {
			c[i*n+j] = 1
		}
		// The only permutation scoring 4 is q.
		best, perm := BruteForce(n, c)
		if best != 4 || [4]int(perm) != q {
			t.Fatalf("BruteForce missed %v: got %v, %v", q, best, perm)
		}
	}
}

func visit(p []int, k int, f func([]int)) {
	if k == len(p) {
		f(append([]int{}, p...))
		return
	}
	for i := k; i < len(p); i++ {
		p[k], p[i] = p[i], p[k]
		visit(p, k+1, f)
		p[k], p[i] = p[i], p[k]
	}
}

func TestWeightMatchingPlanted(t *testing.T) {
	n := 40
	c, planted := WeightMatching(n, 200, 0.1, 1)
	if !IsPermutation(n, planted) {
		t.Fatal("planted is not a permutation")
	}
	// With little noise each row's largest score is its planted partner.
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			if j != planted[i] && c[i*n+j] >= c[i*n+planted[i]] {
				t.Fatalf("row %d: column %d beats the planted %d", i, j, planted[i])
			}
		}
	}
}

func TestCheckDualsRejects(t *testing.T) {
	cost := []float64{1, 0, 0, 1}
	perm := []int{0, 1}
	if err := CheckDuals(2, cost, perm, []float64{1, 1}, []float64{0, 0}, 1e-12); err != nil {
		t.Fatalf("valid certificate rejected: %v", err)
	}
	if err := CheckDuals(2, cost, []int{1, 0}, []float64{1, 1}, []float64{0, 0}, 1e-12); err == nil {
		t.Fatal("suboptimal perm accepted")
	}
	if err := CheckDuals(2, cost, perm, []float64{0.5, 1}, []float64{0, 0}, 1e-12); err == nil {
		t.Fatal("infeasible duals accepted")
	}
}
