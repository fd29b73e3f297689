// Package lap solves dense linear assignment problems exactly.
//
// Given an n×n matrix of float64 scores, [Solve] finds the permutation perm
// that MAXIMISES Σ cost[i*n+perm[i]]. Every step of Git Re-Basin weight
// matching is such a problem (match the units of one layer of model B to
// those of model A by maximising weight similarity), so the solver is built
// for many repeated solves of sizes in the hundreds to thousands, where
// successive matrices differ only a little.
//
// # Algorithm
//
// The solver is a Jonker–Volgenant style shortest augmenting path method
// (R. Jonker, A. Volgenant, "A shortest augmenting path algorithm for dense
// and sparse linear assignment problems", Computing 38, 1987; the augmenting
// phase is the Dijkstra search with dual potentials that D. F. Crouse
// describes in "On implementing 2D rectangular assignment algorithms", IEEE
// TAES 52(4), 2016, and that SciPy's linear_sum_assignment uses). It was
// written from those descriptions. A cold solve runs the three JV
// initialisation phases before augmenting:
//
//  1. column reduction: each column's price is its largest entry, and the
//     column goes to the row holding it if that row is still free;
//  2. reduction transfer: a row that got exactly one column raises that
//     column's price up to the row's second-best value, so other rows are
//     less tempted by it;
//  3. augmenting row reduction: two auction-like passes in which each free
//     row takes its best column, outbidding (and displacing) its owner.
//
// Free rows left after that are assigned one by one by a Dijkstra search
// over columns with reduced costs, which keeps the assignment optimal for the
// rows assigned so far; the whole solve is O(n³) in the worst case and far
// less on typical inputs.
//
// When column reduction leaves more than half of the rows free (n ≥ 64),
// as on matrices whose rows all rank the columns alike, phases 2 and 3 stall
// and nearly every row needs a long search. An ε-scaling auction then takes
// over instead (see auction.go): it assigns every row ε-optimally in a few
// row passes per row, the prices are lowered until each row's column is
// again a best one, and the Dijkstra search assigns the few rows for which
// that fails. The result is the same exact optimum.
//
// The implementation works in "maximisation form": it keeps column prices
// v[j]; row i values column j at cost[i*n+j] − v[j], and an assigned row
// always holds a column it values most. At the end the row duals are
// u[i] = cost[i*n+perm[i]] − v[perm[i]], so that u[i]+v[j] ≥ cost[i*n+j] for
// all i, j with equality on the assignment, and Σu+Σv equals the optimal
// total: the duals are a certificate of optimality ([Solver.Duals]).
//
// # Speed
//
// The matrix is read row by row only (flat row-major []float64, no column
// walks), the solver keeps all scratch in a reusable [Solver], and each
// phase's inner loop is a single pass over one row and a few n-vectors.
// The Dijkstra search fuses relaxation and selection of the next column
// into that one pass, and marks finished columns with +Inf instead of
// branching on them. On amd64 with AVX2 the four hot loops run as vector
// kernels (written in Go assembly, eight columns per step); elsewhere, or
// with the noasm build tag (as for package simd), portable Go loops compute
// exactly the same results.
//
// # Warm start
//
// In weight matching, later sweeps solve matrices close to ones already
// solved. [Solver.SolveWarm] takes the previous permutation and column duals:
// it keeps the old prices, seeds every row whose previous column is still
// one it values most (within 4 ulps, the rounding left by the previous
// solve), runs one augmenting row reduction pass over the rest and augments
// whatever is still free. If the matrix changed so much that fewer than half
// of the rows can be seeded, the auction starts from the old prices instead
// (below n = 64, or without prevPerm: fewer than 70%, a cold start). The
// result is an exact optimum either way; only the work changes.
//
// # Numerics and determinism
//
// Entries must be finite (NaN and ±Inf are rejected with [ErrNonFinite]);
// entries up to [MaxCost] = 1e150 in magnitude are always accepted, and
// rows so large that their sum of squares overflows (about 1e154) are
// rejected with [ErrRange], so no dual can overflow. Prices move only by
// sums and differences of entries, so integer-valued matrices with entries
// below 2⁴⁸/n in magnitude are solved in exact arithmetic, warm or cold;
// for general floats the total is optimal up to rounding of the order of
// n·ε·max|cost|. Ties are broken by index order and the vector kernels
// reproduce the portable loops bit for bit, so the same input gives the
// same permutation on every machine.
package lap

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

var (
	// ErrShape reports a negative n or a cost slice whose length is not n*n.
	ErrShape = errors.New("lap: cost matrix is not n×n")
	// ErrNonFinite reports a NaN or infinite cost entry.
	ErrNonFinite = errors.New("lap: cost entry is not finite")
	// ErrRange reports cost entries so large that the duals could overflow
	// (see [MaxCost]).
	ErrRange = errors.New("lap: cost entry too large")
	// ErrWarmStart reports a malformed warm start: a prevPerm that is not a
	// permutation of 0..n-1, or column duals of the wrong length or non-finite.
	ErrWarmStart = errors.New("lap: invalid warm start")
)

// Solve returns the assignment maximising Σ cost[i*n+perm[i]] over all
// permutations perm of 0..n-1, and that maximal total. cost is the n×n matrix
// in row-major order; it is not modified. n == 0 gives an empty permutation.
//
// Solve allocates a fresh [Solver] each call; to solve many problems, reuse
// one Solver instead.
func Solve(n int, cost []float64) (perm []int, total float64, err error) {
	var s Solver
	return s.Solve(n, cost)
}

// Stats counts the work done by the last solve of a [Solver]; it is meant for
// benchmarks, logging and tests.
type Stats struct {
	// Seeded is the number of rows assigned by the initialisation (column
	// reduction for a cold start, tight previous columns for a warm start)
	// before any augmenting step.
	Seeded int
	// ARRSteps is the number of row steps of augmenting row reduction.
	ARRSteps int
	// AuctionPhases is the number of ε-scaling auction phases run (0 when
	// the JV initialisation or the warm start sufficed).
	AuctionPhases int
	// Augmentations is the number of Dijkstra searches (one per row that was
	// still free after augmenting row reduction).
	Augmentations int
	// Scans is the number of rows expanded by those searches in total.
	Scans int
	// Entries is the number of cost entries read in total, by all phases:
	// a machine-independent measure of the work (the validating pass alone
	// reads n²).
	Entries int64
}

// A Solver solves assignment problems, keeping its scratch memory between
// calls so that repeated solves do not allocate (apart from the returned
// permutation). The zero value is ready to use. A Solver is not safe for
// concurrent use; use one per goroutine.
type Solver struct {
	n int
	// x[i] is the column of row i and y[j] the row of column j, or -1.
	// int32 halves the memory the hot loops stream through.
	x, y []int32
	// v holds the column prices (duals); u the row duals after a solve.
	v, u []float64
	// Dijkstra state: d[j] is the tentative distance of column j and
	// pred[j] the row it was reached from.
	d    []float64
	pred []int32
	// free lists free rows; cnt counts columns per row in column reduction.
	free, cnt []int32
	// scanCol lists the columns a Dijkstra search has finalised and scanW
	// their price minus distance, from which the price update is computed.
	scanCol []int32
	scanW   []float64
	cols    []int32 // columns not yet finalised, for relaxList
	stats   Stats
	solved  bool
}

// Tunables, chosen by measurement on uniform and weight-matching matrices
// of n = 512 to 4096 (the totals of work vary little around these values).
const (
	// arrPasses is the number of augmenting row reduction passes of a
	// cold start (JV use two); warmARRPasses that of a warm start, whose
	// few free rows mostly need only a small price change.
	arrPasses     = 2
	warmARRPasses = 1
	// A warm start that leaves more than warmGiveUp tenths of the rows
	// free is abandoned for a cold one.
	warmGiveUp = 3
	// arrBudget bounds the chained steps of one pass to arrBudget·n. Each
	// chained step strictly raises a price, but with floats the raises can
	// be tiny, so two rows can bid a column up in a long price war; the
	// Dijkstra phase finishes whatever is left more cheaply.
	arrBudget = 2
	// listAfter: without the vector kernel, a search that has finalised
	// more than n/listAfter columns walks a list of the others instead of
	// all columns (see relaxList). With it, the sequential pass is faster
	// than the list walk even then.
	listAfter = 2
)

var inf = math.Inf(1)

// Solve is like the package-level [Solve] but reuses s's memory. After it
// returns without error, [Solver.Duals] gives the optimal duals.
func (s *Solver) Solve(n int, cost []float64) (perm []int, total float64, err error) {
	return s.solve(n, cost, nil, nil)
}

// SolveWarm solves like [Solver.Solve], starting from a previous solution.
//
// prevV are column duals, typically the v returned by [Solver.Duals] after
// solving a similar matrix (for example the same layer in the previous sweep
// of weight matching), and prevPerm the permutation found then. The old
// prices are kept, and each row whose prevPerm column (or, failing that,
// whose best column) is still one it values most is assigned at once, so
// only the rows whose preference changed are augmented; on a slightly
// changed matrix that costs a fraction of a cold solve. The result is an
// exact optimum whatever the warm start; a poor one only costs time, and
// one that leaves more than half of the rows unassigned continues as an
// auction from the old prices (for n ≥ 64 with prevPerm; otherwise one that
// leaves more than 30% is abandoned for a cold start), measured to be
// cheaper then.
//
// Either argument may be nil. Without prevPerm each row is seeded with its
// best column alone. A permutation without duals gives no usable prices (a
// row can hold its old column only if prices make it the row's best), so
// prevPerm alone is checked but otherwise ignored: the solve is cold.
// prevV entries larger in magnitude than 1e200 (far beyond any dual of an
// accepted matrix, see [MaxCost]) are likewise ignored, which keeps every
// sum the solver forms finite.
func (s *Solver) SolveWarm(n int, cost []float64, prevPerm []int, prevV []float64) (perm []int, total float64, err error) {
	if prevPerm == nil && prevV == nil {
		return s.solve(n, cost, nil, nil)
	}
	if !validShape(n, cost) {
		return s.solve(n, cost, nil, nil) // reports the shape error
	}
	if prevPerm != nil {
		if len(prevPerm) != n {
			return nil, 0, fmt.Errorf("%w: len(prevPerm) = %d, want %d", ErrWarmStart, len(prevPerm), n)
		}
		s.grow(n)
		seen := s.cnt // scratch until solve
		clear(seen)
		for i, p := range prevPerm {
			if p < 0 || p >= n || seen[p] != 0 {
				return nil, 0, fmt.Errorf("%w: prevPerm[%d] = %d is not a permutation entry", ErrWarmStart, i, p)
			}
			seen[p] = 1
		}
	}
	if prevV != nil {
		if len(prevV) != n {
			return nil, 0, fmt.Errorf("%w: len(prevV) = %d, want %d", ErrWarmStart, len(prevV), n)
		}
		for j, v := range prevV {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, 0, fmt.Errorf("%w: prevV[%d] = %v", ErrWarmStart, j, v)
			}
			if math.Abs(v) > maxWarmDual {
				prevV = nil
				break
			}
		}
	}
	if prevV == nil {
		return s.solve(n, cost, nil, nil)
	}
	return s.solve(n, cost, prevPerm, prevV)
}

// Duals returns copies of the optimal row duals u and column duals v of the
// last successful solve: u[i]+v[j] ≥ cost[i*n+j] for all i, j (up to
// rounding), with equality when j == perm[i], and Σu+Σv equals the total.
// Pass v (and perm) to [Solver.SolveWarm] to warm-start the next solve. Both
// are nil if s has not solved anything yet.
func (s *Solver) Duals() (u, v []float64) {
	if !s.solved {
		return nil, nil
	}
	return slices.Clone(s.u[:s.n]), slices.Clone(s.v[:s.n])
}

// Stats returns the work counters of the last solve.
func (s *Solver) Stats() Stats { return s.stats }

func (s *Solver) grow(n int) {
	if cap(s.x) < n {
		s.x = make([]int32, n)
		s.y = make([]int32, n)
		s.v = make([]float64, n)
		s.u = make([]float64, n)
		s.d = make([]float64, n)
		s.pred = make([]int32, n)
		s.free = make([]int32, n)
		s.cnt = make([]int32, n)
		s.scanCol = make([]int32, n)
		s.scanW = make([]float64, n)
		s.cols = make([]int32, n)
	}
	s.x, s.y = s.x[:n], s.y[:n]
	s.v, s.u, s.d = s.v[:n], s.u[:n], s.d[:n]
	s.pred, s.free, s.cnt = s.pred[:n], s.free[:n], s.cnt[:n]
	s.scanCol, s.scanW, s.cols = s.scanCol[:n], s.scanW[:n], s.cols[:n]
}

// validShape reports whether cost can be an n×n matrix (n fits the int32
// indices the solver uses).
func validShape(n int, cost []float64) bool {
	return n >= 0 && n <= math.MaxInt32 && len(cost) == n*n
}

// solve is the common driver. prevV == nil means a cold start; otherwise
// prevV are the warm-start prices and prevPerm (possibly nil) the previous
// assignment. Both have been validated.
func (s *Solver) solve(n int, cost []float64, prevPerm []int, prevV []float64) ([]int, float64, error) {
	s.solved = false
	s.stats = Stats{}
	if !validShape(n, cost) {
		return nil, 0, fmt.Errorf("%w: n = %d, len(cost) = %d", ErrShape, n, len(cost))
	}
	s.n = n
	s.grow(n)
	if n == 0 {
		s.solved = true
		return []int{}, 0, nil
	}
	for i := range s.x {
		s.x[i] = -1
		s.y[i] = -1
	}
	s.stats.Entries = int64(n) * int64(n) // the validating pass
	var (
		nfree int
		err   error
	)
	warm, auction := prevV != nil, false
	if warm {
		var slack float64
		nfree, slack, err = s.warmInit(cost, prevPerm, prevV)
		withAuction := coldAuction && n >= auctionMin && prevPerm != nil
		switch {
		case err != nil || nfree*10 <= n*warmGiveUp:
		case withAuction && nfree*10 <= n*warmAuctionGiveUp:
		case withAuction:
			// Too far from the previous solution for augmenting,
			// but its prices are still a start for the auction, at
			// an ε of the order of the rows' mean slack under them.
			auction = true
			for i := range s.x {
				s.x[i] = -1
				s.y[i] = -1
			}
			nfree = s.auctionInit(cost, slack)
		default:
			// Too far from the previous solution: a cold start's
			// initialisation is cheaper than augmenting this many rows.
			warm = false
			for i := range s.x {
				s.x[i] = -1
				s.y[i] = -1
			}
			s.stats.Entries += int64(n) * int64(n)
		}
	}
	if !warm && err == nil {
		nfree, err = s.coldInit(cost)
		if err == nil && coldAuction && n >= auctionMin && nfree*10 > n*auctionFree {
			auction = true
			nfree = s.auctionInit(cost, 0)
		}
	}
	if err != nil {
		return nil, 0, err
	}
	s.stats.Seeded = n - nfree
	passes := arrPasses
	if warm || auction {
		passes = warmARRPasses
	}
	for pass := 0; pass < passes && nfree > 0; pass++ {
		nfree = s.augmentingRowReduction(cost, nfree)
	}
	for _, f := range s.free[:nfree] {
		if err := s.augment(cost, f); err != nil {
			return nil, 0, err
		}
	}
	perm := make([]int, n)
	total := 0.0
	for i, j := range s.x {
		perm[i] = int(j)
		c := cost[i*n+int(j)]
		total += c
		s.u[i] = c - s.v[j]
	}
	s.solved = true
	return perm, total, nil
}

// MaxCost bounds the magnitude of cost entries that are always accepted.
// Larger ones are accepted as long as each row's sum of squares is finite
// (so up to about 1.3e154/√n) and rejected with [ErrRange] beyond that. Any
// accepted matrix keeps every dual far from overflow: duals are sums of at
// most 2n+1 entries.
const MaxCost = 1e150

// seedSlack is the relative slack with which warmInit still counts a row's
// previous column as a best one: 4 ulps.
const seedSlack = 0x1p-50

// maxWarmDual bounds the warm-start duals that SolveWarm uses.
const maxWarmDual = 1e200

// rowSquaresOK reports whether a row's sum of squares is finite. The hot
// loops validate entries this way because it costs one multiply-add per
// entry with no branch: a NaN or ±Inf entry makes the sum NaN or +Inf, and
// so does an entry too large to square.
func rowSquaresOK(sumSq float64) bool { return sumSq-sumSq == 0 }

// badEntry explains why row i failed the sum-of-squares check: it returns
// ErrNonFinite for its first NaN or infinite entry, else ErrRange for its
// largest entry if that exceeds MaxCost. It returns nil if the row is fine
// after all (only possible if n·MaxCost² overflows).
func badEntry(n int, cost []float64, i int) error {
	big, bigJ := 0.0, 0
	for j, c := range cost[i*n : i*n+n] {
		if math.IsNaN(c) || math.IsInf(c, 0) {
			return fmt.Errorf("%w: cost[%d][%d] = %v", ErrNonFinite, i, j, c)
		}
		if math.Abs(c) > big {
			big, bigJ = math.Abs(c), j
		}
	}
	if big > MaxCost {
		return fmt.Errorf("%w: row %d's entries are too large to square (cost[%d][%d] = %v)", ErrRange, i, i, bigJ, cost[i*n+bigJ])
	}
	return nil
}

// coldInit runs column reduction and reduction transfer, validating the
// matrix on the way, and leaves the free rows in s.free. It returns their
// number.
func (s *Solver) coldInit(cost []float64) (int, error) {
	n := s.n
	v := s.v
	arg := s.pred // column reduction's argmax rows; pred is free until augment

	// Column reduction, done row by row so that the matrix is read in
	// memory order (a column walk would stride n*8 bytes per entry). The
	// strict > keeps the first maximal row of each column: deterministic.
	// The same pass validates the entries.
	copy(v, cost[:n])
	for j := range arg {
		arg[j] = 0
	}
	for i := 0; i < n; i++ {
		if !rowSquaresOK(colMax(cost[i*n:i*n+n], v, arg, int32(i))) {
			if err := badEntry(n, cost, i); err != nil {
				return 0, err
			}
		}
	}

	// Give each column to its argmax row if that row has none yet. Going
	// from the last column down, as JV do, means a row that is the
	// argmax of several columns keeps the lowest-numbered one.
	x, y, cnt := s.x, s.y, s.cnt
	for i := range cnt {
		cnt[i] = 0
	}
	for j := n - 1; j >= 0; j-- {
		i := arg[j]
		cnt[i]++
		if cnt[i] == 1 {
			x[i] = int32(j)
			y[j] = i
		} else {
			// Keep the row's lower column: release the one it had.
			y[x[i]] = -1
			x[i] = int32(j)
			y[j] = i
		}
	}

	// Reduction transfer. A row that is the argmax of exactly one column
	// values that column at 0 and every other column at ≤ 0 (prices are
	// column maxima). Raising the column's price by the row's margin over
	// its second-best column keeps the row satisfied (now indifferent
	// between the two) while making the column less attractive to the
	// free rows that augmenting row reduction is about to process.
	// Rows that won several columns are left alone: they cannot give
	// margin to one column without making another look better.
	nfree := 0
	free := s.free
	for i := 0; i < n; i++ {
		if cnt[i] == 0 {
			free[nfree] = int32(i)
			nfree++
		}
	}
	if nfree == 0 {
		return 0, nil // column reduction found the optimum
	}
	for i := 0; i < n; i++ {
		switch {
		case cnt[i] == 1 && n > 1: // n == 1 has no second-best column
			j1 := x[i]
			row := cost[i*n : i*n+n]
			vv := v[:len(row)]
			vj1 := vv[j1]
			vv[j1] = inf // exclude j1 from the minimum
			mu, _, _, _ := twoMin(row, vv)
			vv[j1] = vj1 + mu
			s.stats.Entries += int64(n)
		}
	}
	return nfree, nil
}

// warmInit keeps the given prices, validates
// the matrix while finding each row's best value, and seeds the assignment
// with rows whose previous column, or else best column, is still a best one.
// It returns the number of free rows and the rows' mean slack: how much less
// than its best column each values its previous one (0 without prevPerm).
func (s *Solver) warmInit(cost []float64, prevPerm []int, prevV []float64) (int, float64, error) {
	n := s.n
	v, x, y := s.v, s.x, s.y
	copy(v, prevV)
	bestJ := s.cnt // per-row best column
	slack := 0.0
	for i := 0; i < n; i++ {
		row := cost[i*n : i*n+n]
		vv := v[:len(row)]
		b, bj, sq := rowMin(row, vv)
		if !rowSquaresOK(sq) {
			if err := badEntry(n, cost, i); err != nil {
				return 0, 0, err
			}
		}
		bestJ[i] = int32(bj)
		if len(prevPerm) > 0 {
			slack += (v[prevPerm[i]] - row[prevPerm[i]]) - b
			// Duals computed in floating point leave the optimal
			// column up to about 1.5 ulps (of the larger of price and
			// entry) short of the row's best, so demanding equality
			// would send rows that are in fact optimal through
			// augmentation. Accepting 4 ulps makes the solution
			// optimal to within n·4 ulps, well inside the rounding of
			// a cold solve; integer data stays exact below 2⁵⁰.
			if p := prevPerm[i]; v[p]-row[p] <= b+seedSlack*max(math.Abs(v[p]), math.Abs(row[p])) {
				x[i] = int32(p)
				y[p] = int32(i)
			}
		}
	}
	// Rows whose previous column is no longer a best one take their best
	// column if nobody holds it; the others wait for augmentation.
	nfree := 0
	for i := 0; i < n; i++ {
		if x[i] >= 0 {
			continue
		}
		if j := bestJ[i]; y[j] < 0 {
			x[i] = j
			y[j] = int32(i)
			continue
		}
		s.free[nfree] = int32(i)
		nfree++
	}
	return nfree, slack / float64(n), nil
}

// augmentingRowReduction runs one JV augmenting row reduction pass over the
// s.free[:nfree] rows and returns the number of rows still free, which it
// leaves at the front of s.free.
//
// Each free row i finds its best column j1 (value u1, in reduced form) and
// second best j2 (u2). If u1 < u2 it raises j1's price by u2−u1, which
// keeps j1 a best column for i, takes j1, and processes the displaced owner
// right away. If the two tie, i takes j2 when j1 is owned (no price change),
// and the displaced owner of j2, if any, waits for the next pass. Every
// assigned row keeps a column it values most, as augmentation requires.
func (s *Solver) augmentingRowReduction(cost []float64, nfree int) int {
	n := s.n
	v, x, y, free := s.v, s.x, s.y, s.free
	budget := arrBudget * n
	k, prev := 0, nfree
	nfree = 0
	for k < prev {
		i := free[k]
		k++
		s.stats.ARRSteps++
		s.stats.Entries += int64(n)
		row := cost[int(i)*n : int(i)*n+n]
		u1, j1, u2, j2 := twoMin(row, v)
		i0 := y[j1]
		raised := u1 < u2
		if raised {
			// Price j1 so that i values it exactly like j2.
			v[j1] = row[j1] + u2
		} else if i0 >= 0 {
			j1 = j2
			i0 = y[j2]
		}
		x[i] = int32(j1)
		y[j1] = i
		if i0 >= 0 {
			x[i0] = -1
			if raised && budget > 0 {
				budget--
				k--
				free[k] = i0
			} else {
				free[nfree] = i0
				nfree++
			}
		}
	}
	return nfree
}

// augment assigns the free row f by a Dijkstra search for the shortest
// augmenting path in reduced costs, then updates the prices of the columns
// the search finalised so that every assigned row (f included) again holds
// a column it values most.
//
// Distances: d[j] is the least reduced cost of reaching column j by an
// alternating path from f. A finalised ("scanned") column j is marked by
// d[j] = v[j] = +Inf for the rest of the search, so the relaxation loop
// needs no branch on it: off + (Inf − c) is +Inf, which neither improves
// d[j] nor wins the minimum. Its real price is rebuilt from scanW.
// Relaxation and selection of the next column share one sequential pass
// over the row, v, d and pred, which is what keeps the search fast.
func (s *Solver) augment(cost []float64, f int32) error {
	s.stats.Augmentations++
	n := s.n
	s.stats.Entries += int64(n)
	row := cost[int(f)*n : int(f)*n+n]
	v := s.v[:len(row)]
	d := s.d[:len(row)]
	pred := s.pred[:len(row)]
	y := s.y[:len(row)]
	x := s.x
	scanCol, scanW := s.scanCol, s.scanW

	// Ties prefer a free column, which ends the search at once, and then
	// the lowest index. (The relaxation passes below take the lowest index
	// only: a free column tied with the minimum is reached one scan later,
	// and the vector kernel stays simple.)
	best, bk := inf, -1
	for k, c := range row {
		h := v[k] - c
		d[k] = h
		pred[k] = f
		if h < best || (h == best && y[k] < 0 && y[bk] >= 0) {
			best, bk = h, k
		}
	}
	ns := 0
	// Once many columns are finalised, the search switches from a pass
	// over all columns to a pass over a list of the others (see relaxList).
	var cols []int32
	listed, stale := false, 0
	for {
		j := bk
		i := y[j]
		if i < 0 {
			break
		}
		// Finalise column j at distance best and expand its row i.
		mn := best
		scanCol[ns] = int32(j)
		scanW[ns] = v[j] - mn
		ns++
		row = cost[int(i)*n : int(i)*n+n]
		// i holds j, a column it values most, so v[j]-row[j] is i's
		// least reduced value; off shifts i's reduced costs to distances.
		off := mn - (v[j] - row[j])
		v[j], d[j] = inf, inf
		switch {
		case listed:
			// Drop finalised columns (marked by v = +Inf) once they
			// are a quarter of the list; order is kept, so the list
			// is walked in increasing memory order.
			if stale++; 4*stale > len(cols) {
				w := 0
				for _, k := range cols {
					if v[k] != inf {
						cols[w] = k
						w++
					}
				}
				cols, stale = cols[:w], 0
			}
		case !useAVX2 && ns*listAfter > n:
			cols = s.cols[:0]
			for k, vk := range v {
				if vk != inf {
					cols = append(cols, int32(k))
				}
			}
			listed, stale = true, 0
		}
		if listed {
			best, bk = relaxList(row, v, d, pred, cols, i, off)
			s.stats.Entries += int64(len(cols))
		} else {
			best, bk = relax(row, v, d, pred, i, off)
			s.stats.Entries += int64(n)
		}
		if bk < 0 {
			// Unreachable with finite, in-range entries: some column is
			// always free while a row is.
			return errors.New("lap: internal error: augmenting path search found no column")
		}
	}
	s.stats.Scans += ns
	// Prices: a finalised column's price rises by best − d[j] ≥ 0.
	for t := 0; t < ns; t++ {
		v[scanCol[t]] = scanW[t] + best
	}
	// Flip the path back from the free column bk to f.
	for j := int32(bk); ; {
		i := pred[j]
		y[j] = i
		j, x[i] = x[i], j
		if i == f {
			break
		}
	}
	return nil
}
