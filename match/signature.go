package match

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/onnx-rebasin/onnx-rebasin/internal/hugepage"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// signatureStart matches every group's units on permutation-invariant
// signatures: within each site, a unit's weights sorted by value, which no
// permutation of the other groups can change. Groups of up to
// maxSignatureAssign units are solved as an assignment on Σ⟨sort(a_i),
// sort(b_j)⟩, which bounds what units i and j can contribute; larger ones
// are paired by the rank of their energy Σ w², because those near-rank-one
// cost matrices made the solver take 40 s at n = 4096. Either way a
// permuted copy of A is matched exactly at once.
//
// A start needs no precision (the descent checks every move exactly), so
// the sorted rows are approximated (see rankSignature): sorting and
// multiplying them whole took most of the first sweep on large models.
func (mt *matcher) signatureStart() (permute.Perms, error) {
	perms := make(permute.Perms, len(mt.groups))
	// Room up front for the descent's largest column updates (see
	// updateSite), so that the scratch grows once: every growth would
	// touch fresh memory again.
	largest := 0
	for i := range mt.sites {
		largest = max(largest, mt.sites[i].rows*mt.sites[i].cols)
	}
	scratch(&mt.main.rBuf, largest/2+1)
	// Groups are independent: each of up to GOMAXPROCS goroutines takes
	// the next group, largest first (so that the last to finish are
	// small), builds its signatures and cost and solves its assignment.
	// Products and sorts of a group use the cores that no other group
	// holds, which only changes who computes what: every result is the
	// same for any number of threads.
	order := sitelayout.IdentityPerm(len(mt.groups))
	slices.SortStableFunc(order, func(g, h int) int { return cmp.Compare(mt.groups[h].Size, mt.groups[g].Size) })
	errs := make([]error, len(mt.groups))
	sigCost := make([][]float64, len(mt.groups))
	procs := runtime.GOMAXPROCS(0)
	var next, busy atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < min(procs, len(order)); w++ {
		// The first goroutine uses the matcher's scratch, which the
		// descent reuses; the others their own.
		sc := &sigScratch{sa: &mt.lBuf, sb: &mt.main.rBuf, tmp: &mt.main.tmp32}
		if w > 0 {
			sc = &sigScratch{sa: new([]float32), sb: new([]float32), tmp: new([]float32)}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1) - 1); k < len(order); k = int(next.Add(1) - 1) {
				g := order[k]
				// Cores not held by the other groups in progress.
				threads := max(1, procs-int(busy.Add(1))+1)
				sigCost[g], perms[g], errs[g] = mt.groupSignature(g, sc, threads)
				busy.Add(-1)
			}
		}()
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", g, err)
		}
	}
	if err := mt.signatureSets(perms, sigCost); err != nil {
		return nil, err
	}
	// The signature costs are the size of the descent's: it takes them
	// over (see groupCostWith) rather than touching fresh memory, which
	// cost more than computing them on the benchmark VM.
	mt.spareCost = sigCost
	return perms, nil
}

// sigScratch is the scratch of one goroutine of signatureStart.
type sigScratch struct{ sa, sb, tmp *[]float32 }

// groupSignature builds group g's signature start on up to threads
// goroutines: its signature cost (nil for a group too large for an
// assignment) and, unless g belongs to a block set (solved with its set),
// its permutation.
func (mt *matcher) groupSignature(g int, sc *sigScratch, threads int) (cost []float64, perm []int, err error) {
	n := mt.groups[g].Size
	assign := n <= maxSignatureAssign
	keyA, keyB := make([]float64, n), make([]float64, n)
	if assign {
		cost = hugepage.Make[float64](n * n)
	}
	for _, si := range mt.byGroup[g] {
		s := &mt.sites[si]
		l := min(sigBlocks, s.cols)
		sa, sb := scratch(sc.sa, n*l), scratch(sc.sb, n*l)
		mt.siteSignatures(s, sa, sb, l, keyA, keyB, threads)
		if assign {
			tmp := scratch(sc.tmp, n*n)
			one := []simd.Run{{Col: 0, Off: 0, Len: l}}
			simd.GemmRuns(threads, n, n, l, simd.RunMatrix{Data: sa, RowStride: l, Runs: one}, simd.RunMatrix{Data: sb, RowStride: l, Runs: one}, tmp, n)
			addWidened(cost, tmp, threads)
		}
	}
	if mt.setOf[g] >= 0 {
		// Solved with its block set (signatureSets); too large a group
		// starts its set at the identity.
		return cost, nil, nil
	}
	if assign {
		var solver lap.Solver
		perm, _, err = solver.Solve(n, cost)
		return cost, perm, err
	}
	ra, rb := rankOrder(keyA), rankOrder(keyB)
	perm = make([]int, n)
	for r := range ra {
		perm[ra[r]] = rb[r]
	}
	return nil, perm, nil
}

// signatureSets gives the groups of every block set their block-structured
// signature start (sitelayout.BlockSolve on the signature costs), or the identity when
// a member was too large for an assignment.
func (mt *matcher) signatureSets(perms permute.Perms, sigCost [][]float64) error {
	var solver lap.Solver
	for k := range mt.sets {
		set := mt.sets[k]
		costs := make([][]float64, len(set))
		for i, g := range set {
			costs[i] = sigCost[g]
		}
		if slices.ContainsFunc(costs, func(c []float64) bool { return c == nil }) {
			for _, g := range set {
				perms[g] = sitelayout.IdentityPerm(mt.groups[g].Size)
			}
			continue
		}
		ps, err := sitelayout.SolveSet(&solver, mt.groups, set, costs)
		if err != nil {
			return fmt.Errorf("groups %v: %w", set, err)
		}
		for i, g := range set {
			perms[g] = ps[i]
		}
	}
	return nil
}

// maxSignatureAssign is the largest group whose signature start is solved
// as an assignment problem (see signatureStart). A variable so tests can
// exercise the rank pairing on small models.
var maxSignatureAssign = 2048

// sigBlocks is how many rank blocks a unit's signature keeps per site.
const sigBlocks = 256

// siteSignatures writes the rank signatures (rows × l) of site s's units
// in A and B into sa and sb, and adds their energies to energyA and
// energyB, on up to threads goroutines. B is read unpermuted: the signatures do not depend on columns'
// order.
func (mt *matcher) siteSignatures(s *matchSite, sa, sb []float32, l int, energyA, energyB []float64, threads int) {
	use := &mt.uses[s.use]
	do := func(r0, r1 int) {
		keys, tmp := make([]uint16, s.cols), make([]uint16, s.cols)
		for i := r0; i < r1; i++ {
			energyA[i] += rankSignatureRuns(use.a, s.rowOff[i], s.aRuns, s.cols, sa[i*l:(i+1)*l], keys, tmp)
			energyB[i] += rankSignatureRuns(use.b, s.rowOff[i], s.aRuns, s.cols, sb[i*l:(i+1)*l], keys, tmp)
		}
	}
	sitelayout.InParallel(s.rows, min(threads, s.rows, s.rows*s.cols>>15+1), do)
}

// rankSignature writes a unit's signature into sig: the unit's values x,
// truncated to bfloat16 and sorted, summed over len(sig) ≤ len(x)
// consecutive blocks of ranks, each sum divided by √(block length), so
// that ⟨sig(a), sig(b)⟩ approximates ⟨sort(a), sort(b)⟩. It returns the
// energy Σ v² of the truncated values, summed in rank order. Rows of at
// least 8·len(sig) values are estimated from a sample of about a quarter
// of them. Both depend only on the multiset of x's values, so a permuted
// copy has the same signature bit for bit. keys and tmp must hold len(x).
func rankSignature(x, sig []float32, keys, tmp []uint16) float64 {
	return rankSignatureRuns(x, 0, []simd.Run{{Col: 0, Off: 0, Len: len(x)}}, len(x), sig, keys, tmp)
}

// rankSignatureRuns is rankSignature of the n values of data at base plus
// the runs' offsets, read in place (a site's row, whose runs are strided in
// the tensor).
func rankSignatureRuns(data []float32, base int, runs []simd.Run, n int, sig []float32, keys, tmp []uint16) float64 {
	l := len(sig)
	// Long rows keep the values whose bits hash into a quarter of the
	// range: a sample that depends on the values alone, as the signature
	// must, and a quarter of the sorting.
	m := 0
	if n >= 8*l {
		for _, q := range runs {
			for _, v := range data[base+q.Off : base+q.Off+q.Len] {
				keys[m] = sigKey(v)
				m += sampled(v)
			}
		}
	}
	if m < 2*l {
		m = 0
		for _, q := range runs {
			for _, v := range data[base+q.Off : base+q.Off+q.Len] {
				keys[m] = sigKey(v)
				m++
			}
		}
	}
	sortKeys(keys[:m], tmp[:m])
	// Block means of the sample, scaled to the block sums of the whole
	// row over √(block length): (n/l)·mean/√(n/l).
	energy := 0.0
	scale := math.Sqrt(float64(n) / float64(l))
	// Block b holds ranks [b·m/l, (b+1)·m/l). The bounds advance by m/l
	// and carry m%l, rather than by two integer divisions a block: a row
	// of up to 256 values has a block per value, and the divisions took a
	// tenth to a sixth of its signature.
	step, rem := m/l, m%l
	r0, carry := 0, 0
	for b := 0; b < l; b++ {
		r1 := r0 + step
		if carry += rem; carry >= l {
			carry -= l
			r1++
		}
		sum := 0.0
		for _, k := range keys[r0:r1] {
			v := float64(sigValue(k))
			sum += v
			energy += v * v
		}
		sig[b] = float32(sum / float64(r1-r0) * scale)
		r0 = r1
	}
	return energy * (float64(n) / float64(m))
}

// sampled is 1 if v is in rankSignature's sample, else 0: if the top two
// bits of a Fibonacci hash of its bits are 01 (by table: a branch would be
// mispredicted a quarter of the time).
func sampled(v float32) int {
	return int(sampleTable[math.Float32bits(v)*0x9e3779b1>>30])
}

var sampleTable = [4]uint8{0, 1, 0, 0}

// sortKeys sorts keys in increasing order; tmp must be as long.
func sortKeys(keys, tmp []uint16) {
	if len(keys) <= 64 {
		// Short rows (1-D weights have one value per unit): the
		// histograms would cost more than the values.
		for i := 1; i < len(keys); i++ {
			k := keys[i]
			j := i
			for ; j > 0 && keys[j-1] > k; j-- {
				keys[j] = keys[j-1]
			}
			keys[j] = k
		}
		return
	}
	// Two 8-bit LSD radix passes; one counting pass fills both histograms.
	var count [2][256]uint32
	for _, k := range keys {
		count[0][k&255]++
		count[1][k>>8]++
	}
	for d := range count {
		sum := uint32(0)
		for i, c := range count[d] {
			count[d][i] = sum
			sum += c
		}
	}
	for _, k := range keys {
		d := k & 255
		tmp[count[0][d]] = k
		count[0][d]++
	}
	for _, k := range tmp {
		d := k >> 8
		keys[count[1][d]] = k
		count[1][d]++
	}
}

// sigKey maps v to a uint16 that orders like v truncated to bfloat16 (its
// top 16 bits): negative values reversed, −0 before +0.
func sigKey(v float32) uint16 {
	h := uint16(math.Float32bits(v) >> 16)
	// Branch-free (signs are random): flip every bit of a negative value,
	// only the sign bit of a positive one.
	neg := uint16(int16(h) >> 15)
	return h ^ (neg | 0x8000)
}

// sigValue inverts sigKey: the bfloat16 value as a float32 (infinities and
// NaNs stay what they are).
func sigValue(k uint16) float32 {
	pos := uint16(int16(k) >> 15)
	return math.Float32frombits(uint32(k^(^pos|0x8000)) << 16)
}

// rankOrder returns the indices of keys in increasing key order (ties by index).
func rankOrder(keys []float64) []int {
	idx := sitelayout.IdentityPerm(len(keys))
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	return idx
}
