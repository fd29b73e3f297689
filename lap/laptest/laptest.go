// Package laptest makes cost matrices for testing and benchmarking package
// lap, and checks solutions against them. It is used by lap's tests and
// benchmarks and by the scipy comparison in bench/lap; it is not needed to
// use lap.
//
// All generators are deterministic functions of their seed (math/rand/v2's
// PCG), so a benchmark or a failing test can be reproduced exactly.
package laptest

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
)

// NewRand returns the PCG generator that the generators use for seed.
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// Uniform returns an n×n row-major matrix of independent uniform [0, 1)
// entries.
func Uniform(n int, seed uint64) []float64 {
	r := NewRand(seed)
	c := make([]float64, n*n)
	for i := range c {
		c[i] = r.Float64()
	}
	return c
}

// Integers returns an n×n matrix of uniform integers in [lo, hi], as
// float64. A small range gives many ties and many optimal permutations.
func Integers(n int, lo, hi int, seed uint64) []float64 {
	r := NewRand(seed)
	c := make([]float64, n*n)
	for i := range c {
		c[i] = float64(lo + r.IntN(hi-lo+1))
	}
	return c
}

// WeightMatchingNoise is the noise level at which the planted permutation of
// [WeightMatching] stops being the row-wise maximum for a sizeable share of
// rows: the planted score d must beat the largest of n off-diagonal scores,
// about sqrt(2 ln n · d(1+σ²)). Below it the problem is nearly solved by
// column reduction; at it, it is as hard as weight matching between
// independently trained networks tends to be.
func WeightMatchingNoise(n, d int) float64 {
	s := float64(d)/(2*math.Log(float64(n))) - 1
	if s < 0 {
		return 0
	}
	return math.Sqrt(s)
}

// WeightMatching returns a weight-matching-like n×n score matrix C = A·Bᵀ,
// where A is n×d standard normal and B = P·A + noise·E is a row
// permutation of A plus independent standard normal noise E. It also returns
// the planted permutation planted (row i of A is row planted[i] of B), which
// is the optimum when noise is small. The product runs on all CPUs.
func WeightMatching(n, d int, noise float64, seed uint64) (cost []float64, planted []int) {
	r := NewRand(seed)
	a := make([]float64, n*d)
	for i := range a {
		a[i] = r.NormFloat64()
	}
	planted = r.Perm(n)
	b := make([]float64, n*d)
	for i := 0; i < n; i++ {
		dst := b[planted[i]*d : planted[i]*d+d]
		for t, x := range a[i*d : i*d+d] {
			dst[t] = x + noise*r.NormFloat64()
		}
	}
	return MulABt(a, b, n, n, d), planted
}

// MulABt returns the m×n product A·Bᵀ of row-major A (m×d) and B (n×d). It
// is blocked for cache and split over GOMAXPROCS goroutines; it exists so
// benchmark setup at n = 4096, d = 4096 takes seconds, not minutes.
func MulABt(a, b []float64, m, n, d int) []float64 {
	if len(a) != m*d || len(b) != n*d {
		panic(fmt.Sprintf("laptest.MulABt: len(a)=%d, len(b)=%d, want %d, %d", len(a), len(b), m*d, n*d))
	}
	c := make([]float64, m*n)
	const (
		tBlock = 256 // inner-dimension chunk: 2 KiB of each row
		iBlock = 64  // rows of A whose chunks stay in cache
	)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	next := make(chan int, (m+iBlock-1)/iBlock)
	for i0 := 0; i0 < m; i0 += iBlock {
		next <- i0
	}
	close(next)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i0 := range next {
				i1 := min(i0+iBlock, m)
				for t0 := 0; t0 < d; t0 += tBlock {
					t1 := min(t0+tBlock, d)
					mulBlock(a, b, c, n, d, i0, i1, t0, t1)
				}
			}
		}()
	}
	wg.Wait()
	return c
}

// mulBlock adds A[i0:i1, t0:t1]·B[:, t0:t1]ᵀ into C with a 4×4 register
// tile of dot products, falling back to single dot products at the edges.
func mulBlock(a, b, c []float64, n, d, i0, i1, t0, t1 int) {
	L := t1 - t0
	k := 0
	for ; k+4 <= n; k += 4 {
		b0 := b[k*d+t0 : k*d+t0+L]
		b1 := b[(k+1)*d+t0 : (k+1)*d+t0+L]
		b2 := b[(k+2)*d+t0 : (k+2)*d+t0+L]
		b3 := b[(k+3)*d+t0 : (k+3)*d+t0+L]
		i := i0
		for ; i+4 <= i1; i += 4 {
			a0 := a[i*d+t0 : i*d+t0+L]
			a1 := a[(i+1)*d+t0 : (i+1)*d+t0+L]
			a2 := a[(i+2)*d+t0 : (i+2)*d+t0+L]
			a3 := a[(i+3)*d+t0 : (i+3)*d+t0+L]
			var s00, s01, s02, s03, s10, s11, s12, s13 float64
			var s20, s21, s22, s23, s30, s31, s32, s33 float64
			for t := range L {
				x0, x1, x2, x3 := a0[t], a1[t], a2[t], a3[t]
				y0, y1, y2, y3 := b0[t], b1[t], b2[t], b3[t]
				s00 += x0 * y0
				s01 += x0 * y1
				s02 += x0 * y2
				s03 += x0 * y3
				s10 += x1 * y0
				s11 += x1 * y1
				s12 += x1 * y2
				s13 += x1 * y3
				s20 += x2 * y0
				s21 += x2 * y1
				s22 += x2 * y2
				s23 += x2 * y3
				s30 += x3 * y0
				s31 += x3 * y1
				s32 += x3 * y2
				s33 += x3 * y3
			}
			c[i*n+k] += s00
			c[i*n+k+1] += s01
			c[i*n+k+2] += s02
			c[i*n+k+3] += s03
			c[(i+1)*n+k] += s10
			c[(i+1)*n+k+1] += s11
			c[(i+1)*n+k+2] += s12
			c[(i+1)*n+k+3] += s13
			c[(i+2)*n+k] += s20
			c[(i+2)*n+k+1] += s21
			c[(i+2)*n+k+2] += s22
			c[(i+2)*n+k+3] += s23
			c[(i+3)*n+k] += s30
			c[(i+3)*n+k+1] += s31
			c[(i+3)*n+k+2] += s32
			c[(i+3)*n+k+3] += s33
		}
		for ; i < i1; i++ {
			for kk := k; kk < k+4; kk++ {
				c[i*n+kk] += dot(a[i*d+t0:i*d+t1], b[kk*d+t0:kk*d+t1])
			}
		}
	}
	for ; k < n; k++ {
		for i := i0; i < i1; i++ {
			c[i*n+k] += dot(a[i*d+t0:i*d+t1], b[k*d+t0:k*d+t1])
		}
	}
}

func dot(x, y []float64) float64 {
	s := 0.0
	for t, v := range x {
		s += v * y[t]
	}
	return s
}

// Total returns Σ cost[i*n+perm[i]], summed in row order.
func Total(n int, cost []float64, perm []int) float64 {
	t := 0.0
	for i, j := range perm {
		t += cost[i*n+j]
	}
	return t
}

// IsPermutation reports whether perm is a permutation of 0..n-1.
func IsPermutation(n int, perm []int) bool {
	if len(perm) != n {
		return false
	}
	seen := make([]bool, n)
	for _, j := range perm {
		if j < 0 || j >= n || seen[j] {
			return false
		}
		seen[j] = true
	}
	return true
}

// BruteForce returns the maximal total over all n! permutations and one
// permutation attaining it (the first in Heap's-algorithm order). It is the
// independent oracle for small n (n ≤ 9 or so).
func BruteForce(n int, cost []float64) (best float64, bestPerm []int) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	best = Total(n, cost, p)
	bestPerm = append([]int{}, p...)
	// Heap's algorithm, iterative form.
	c := make([]int, n)
	for i := 1; i < n; {
		if c[i] < i {
			if i%2 == 0 {
				p[0], p[i] = p[i], p[0]
			} else {
				p[c[i]], p[i] = p[i], p[c[i]]
			}
			if t := Total(n, cost, p); t > best {
				best = t
				copy(bestPerm, p)
			}
			c[i]++
			i = 1
		} else {
			c[i] = 0
			i++
		}
	}
	return best, bestPerm
}

// CheckDuals verifies that u, v certify perm as optimal for the n×n cost:
// u[i]+v[j] ≥ cost[i*n+j] − tol for all i, j, u[i]+v[perm[i]] equals
// cost[i*n+perm[i]] within tol, and Σu+Σv equals the total within n·tol.
// By weak duality Σu+Σv (up to n·tol) bounds every permutation's total, so
// this is a proof of optimality independent of how the solution was found.
func CheckDuals(n int, cost []float64, perm []int, u, v []float64, tol float64) error {
	if len(u) != n || len(v) != n {
		return fmt.Errorf("duals have lengths %d, %d, want %d", len(u), len(v), n)
	}
	for i := 0; i < n; i++ {
		row := cost[i*n : i*n+n]
		for j, c := range row {
			if u[i]+v[j] < c-tol {
				return fmt.Errorf("dual infeasible at (%d,%d): u+v = %v < cost %v", i, j, u[i]+v[j], c)
			}
		}
		if j := perm[i]; math.Abs(u[i]+v[j]-row[j]) > tol {
			return fmt.Errorf("complementary slackness fails at (%d,%d): u+v = %v, cost %v", i, j, u[i]+v[j], row[j])
		}
	}
	sum := 0.0
	for i := range u {
		sum += u[i] + v[i]
	}
	if t := Total(n, cost, perm); math.Abs(sum-t) > float64(n)*tol {
		return fmt.Errorf("dual objective %v != primal total %v", sum, t)
	}
	return nil
}

// Kinds are the benchmark matrix kinds that [Generate] knows.
var Kinds = []string{"uniform", "wm", "wm-easy"}

// Generate builds a benchmark matrix of the given kind:
//
//   - "uniform": [Uniform];
//   - "wm": [WeightMatching] with d = n at [WeightMatchingNoise], where
//     many rows' planted partner is not their best column;
//   - "wm-easy": [WeightMatching] with d = n and noise 1, where column
//     reduction alone finds the optimum.
func Generate(kind string, n int, seed uint64) []float64 {
	switch kind {
	case "uniform":
		return Uniform(n, seed)
	case "wm":
		c, _ := WeightMatching(n, n, WeightMatchingNoise(n, n), seed)
		return c
	case "wm-easy":
		c, _ := WeightMatching(n, n, 1, seed)
		return c
	}
	panic("laptest.Generate: unknown kind " + kind)
}

// ReadMatrix reads an n×n matrix stored as raw little-endian float64.
func ReadMatrix(path string, n int) ([]float64, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(buf) != 8*n*n {
		return nil, fmt.Errorf("%s: %d bytes, want %d for n = %d", path, len(buf), 8*n*n, n)
	}
	c := make([]float64, n*n)
	for i := range c {
		c[i] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:]))
	}
	return c, nil
}

// WriteMatrix writes c as raw little-endian float64.
func WriteMatrix(path string, c []float64) error {
	buf := make([]byte, 8*len(c))
	for i, v := range c {
		binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
	}
	return os.WriteFile(path, buf, 0o644)
}
