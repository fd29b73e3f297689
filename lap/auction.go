package lap

import "math"

// Cold start by ε-scaling auction.
//
// Column reduction seeds almost nothing on matrices whose rows all rank the
// columns alike (near-rank-one ones, such as weight matching's signature
// start, where one row holds every column's maximum): the augmenting row
// reduction then stalls and nearly every row needs a long Dijkstra search,
// O(n³) in all. An auction (D. P. Bertsekas, "The auction algorithm: a
// distributed relaxation method for the assignment problem", Annals of
// Operations Research 14, 1988; ε-scaling as in Bertsekas & Eckstein 1988)
// settles such matrices in a few row passes per row: each free row bids for
// its best column, raising that column's price by its margin over its
// second best plus ε, and displaces the column's owner. Its result is only
// ε-optimal, so the solve finishes as the warm start does: prices are
// lowered until every row's column is again a best one (exactly, in the
// same arithmetic as the rest of the solver), rows for which that fails
// are freed, and the Dijkstra search assigns them. The result is an exact
// optimum, like every other path of the solver; only the work differs.
//
// Every ε is a power of two, and prices only ever change by sums and
// differences of entries, prices and ε, so integer matrices stay in exact
// arithmetic (see the package comment).

// coldAuction selects the auction for cold starts that column reduction
// leaves mostly unassigned (see auctionFree). auctionMin is the smallest n
// solved that way: below it the JV initialisation is cheap whatever the
// matrix. Variables so that tests can compare the two and force the
// auction on small matrices.
var (
	coldAuction = true
	auctionMin  = 64
)

const (
	// auctionFree: the auction takes over a cold start when column
	// reduction leaves more than auctionFree tenths of the rows free;
	// when it seeds most rows, as on matrices close to a solved one, the
	// JV phases finish sooner (measured on uniform and weight-matching
	// matrices of n = 512 to 2048).
	auctionFree = 5
	// warmAuctionGiveUp replaces warmGiveUp where the auction can take
	// over: a warm start goes to the auction only when it leaves more
	// than warmAuctionGiveUp tenths of the rows free. Augmenting up to
	// half of the rows from the old prices read 42% fewer entries than
	// auctioning from 30% on on the later sweeps of weight matching
	// (mlp and cnn_bn test pairs, 45 warm solves).
	warmAuctionGiveUp = 5
	// auctionScale is log₂ of the factor by which ε shrinks per phase,
	// and auctionFinal log₂ of the last phase's ε relative to the spread
	// of the entries: the fewest row passes on the signature and first
	// sweep matrices of weight matching (3 and −20 of 2…4 and −16…−30).
	auctionScale = 3
	auctionFinal = -20
	// auctionBudget bounds the bids of one phase to auctionBudget·n; a
	// price war beyond that leaves its rows to the Dijkstra search.
	auctionBudget = 64
)

// auctionInit finishes an initialisation by auction, from the prices that
// coldInit or warmInit left (either has validated the matrix). It runs the
// auction phases, from an ε of about startEps if that is positive (a warm
// start's slack) or else from one of the order of the entries' spread, makes
// every assigned row's column a best one again, and leaves the rows it could
// not assign in s.free. It returns their number.
func (s *Solver) auctionInit(cost []float64, startEps float64) int {
	n := s.n
	v, x, y, free := s.v, s.x, s.y, s.free
	s.stats.Entries += int64(n) // the spread's row below
	// Spread of the entries, estimated from the prices (column maxima,
	// some raised by reduction transfer) and the first row: it sets the
	// first ε, which only has to be of the right order.
	lo, hi := inf, math.Inf(-1)
	for j := 0; j < n; j++ {
		lo, hi = min(lo, v[j], cost[j]), max(hi, v[j])
	}
	spread := hi - lo
	if spread == 0 {
		spread = max(math.Abs(hi), 1)
	}
	_, e := math.Frexp(spread) // spread < 2^e
	epsExp := e - 3            // ε₀ about spread/16..spread/8
	lastExp := e + auctionFinal
	if startEps > 0 {
		_, se := math.Frexp(startEps) // startEps < 2^se
		epsExp = min(epsExp, se)
	}
	// Never let ε fall below the prices' precision, where adding it would
	// change nothing.
	_, pe := math.Frexp(max(math.Abs(hi), math.Abs(lo), spread))
	lastExp = max(lastExp, pe-45)
	nfree := 0
	for {
		eps := math.Ldexp(1, epsExp)
		for i := range x {
			x[i], y[i] = -1, -1
			free[i] = int32(i)
		}
		nfree = s.auctionPhase(cost, eps)
		s.stats.AuctionPhases++
		if epsExp <= lastExp {
			break
		}
		epsExp = max(epsExp-auctionScale, lastExp)
	}
	// The rows the last phase left in a price war.
	for k, i := 0, 0; i < n; i++ {
		if x[i] < 0 {
			free[k] = int32(i)
			k++
		}
	}
	// Make every assigned row's column a best one: lower each column's
	// price by its owner's slack (at most ε), all at once, then free the
	// rows whose column a lowered neighbour now beats.
	slack := s.d
	for i := 0; i < n; i++ {
		slack[i] = 0
		if j := x[i]; j >= 0 {
			row := cost[i*n : i*n+n]
			b, _, _ := rowMin(row, v)
			slack[i] = (v[j] - row[j]) - b
		}
	}
	for i := 0; i < n; i++ {
		if j := x[i]; j >= 0 {
			v[j] -= slack[i]
		}
	}
	s.stats.Entries += 2 * int64(n) * int64(n)
	nfree = 0
	for i := 0; i < n; i++ {
		j := x[i]
		if j >= 0 {
			row := cost[i*n : i*n+n]
			if b, _, _ := rowMin(row, v); v[j]-row[j] <= b {
				continue
			}
			x[i], y[j] = -1, -1
		}
		free[nfree] = int32(i)
		nfree++
	}
	return nfree
}

// auctionPhase runs one phase of Gauss–Seidel auction with increment eps
// from all rows free (listed in s.free) and returns the number of rows still
// free, which is 0 unless the bid budget ran out.
func (s *Solver) auctionPhase(cost []float64, eps float64) int {
	n := s.n
	v, x, y, queue := s.v, s.x, s.y, s.free
	// queue is a ring of the free rows, in the order they were freed.
	head, count := 0, n
	budget := auctionBudget * n
	for count > 0 && budget > 0 {
		budget--
		i := queue[head]
		head++
		if head == n {
			head = 0
		}
		count--
		s.stats.ARRSteps++
		s.stats.Entries += int64(n)
		row := cost[int(i)*n : int(i)*n+n]
		_, j1, u2, _ := twoMin(row, v)
		// i now values j1 at its second best value less ε.
		p := row[j1] + u2 + eps
		if p <= v[j1] {
			p = math.Nextafter(v[j1], inf) // ε below the price's precision
		}
		v[j1] = p
		if k := y[j1]; k >= 0 {
			x[k] = -1
			tail := head + count
			if tail >= n {
				tail -= n
			}
			queue[tail] = k
			count++
		}
		x[i], y[j1] = int32(j1), i
	}
	return count
}
