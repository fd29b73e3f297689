// Package activation holds the parts of re-basin that run the models on
// data: activation matching (Git Re-Basin's second method), resetting
// BatchNorm statistics, and REPAIR (Jordan et al. 2022), which corrects a
// merged model's per-channel statistics.
package activation

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// Options controls the passes over data of activation matching, BatchNorm
// resets and REPAIR.
type Options struct {
	Batch    int                   // samples per forward pass (default 256)
	Progress func(done, total int) // called after each batch, if set
	// Context, if set, stops the passes with its error when cancelled.
	Context context.Context
}

func (o Options) batch() int {
	if o.Batch <= 0 {
		return 256
	}
	return o.Batch
}

// channelStats accumulates, for one activation site seen in two models, the
// per-channel sums and the cross-product sums Σ a_i·b_j, in float64.
type channelStats struct {
	n          float64
	sumA, sumB []float64
	sqA, sqB   []float64
	cross      []float64 // c×c, row i = channel i of A
	channels   int
	value      string // in A
	valueB     string // the same value in B (whose names may differ)
	axis       int
	// A site that an inference-mode BatchNormalization computes from
	// another site of its group, in both models, is not measured: its
	// moments follow from that site's and the per-channel scales
	// γ/√(σ²+ε) of the two models' BatchNorms (see deriveBatchNormSites).
	from           *channelStats
	scaleA, scaleB []float64
	// repeat, when above 1, says that the channels are the group's units
	// repeated (graph.ActivationSite.Repeat), perBlock units per block.
	repeat, perBlock int
}

func newChannelStats(value string, axis, c int) *channelStats {
	return &channelStats{value: value, axis: axis, channels: c,
		sumA: make([]float64, c), sumB: make([]float64, c), sqA: make([]float64, c), sqB: make([]float64, c),
		cross: make([]float64, c*c)}
}

// crossChunk is the most samples (positions) whose cross products are
// summed in float32 before they are added to the float64 sums. A variable
// so that tests can split batches at every kind of boundary.
var crossChunk = 4096

// concurrentChunkChannels: sites of fewer channels compute several chunks'
// products at once (see add).
const concurrentChunkChannels = 256

// add accumulates one batch of the site's values: xa, xb laid out as
// outer × channels × inner.
func (s *channelStats) add(shape []int, xa, xb []float32) error {
	if s.axis >= len(shape) || shape[s.axis] != s.channels {
		return fmt.Errorf("activation %s: shape %v has no axis %d of %d channels", s.value, shape, s.axis, s.channels)
	}
	outer, inner := 1, 1
	for i, d := range shape {
		if i < s.axis {
			outer *= d
		} else if i > s.axis {
			inner *= d
		}
	}
	c := s.channels
	// The products are float32 sums over chunks of at most crossChunk
	// samples (twice the float64 kernel's throughput, and no widening while
	// packing), added up in float64: a chunk's rounding error is about
	// 1e-6 of its sum, far below the correlations' differences that the
	// assignment ranks, and the sums over the whole data stay float64.
	if inner == 1 {
		// rows × channels: Σ over rows of a_rowᵀ b_row.
		part := chunkProducts(c * c)
		defer partPool.Put(part)
		for o0 := 0; o0 < outer; o0 += crossChunk {
			rows := min(crossChunk, outer-o0)
			simd.Gemm(true, false, c, c, rows, 1, xa[o0*c:], c, xb[o0*c:], c, 0, *part, c)
			s.addPart(*part)
		}
	} else {
		// One product over a chunk of samples, not one per sample: with
		// few positions per channel (late layers) a product per sample
		// would mostly read and write the c×c sums. Row ch of each operand
		// is channel ch of every sample, read in place (one run per sample).
		per := max(1, crossChunk/inner)
		runs := make([]simd.Run, outer)
		for o := range runs {
			runs[o] = simd.Run{Col: o % per * inner, Off: o * c * inner, Len: inner}
		}
		chunks := (outer + per - 1) / per
		// A product of few channels has too few output blocks to use
		// more than one core: then a wave of chunks is computed at once,
		// one core each. Either way each chunk's product is the same bits
		// (GemmRuns does not depend on its worker count) and the chunks
		// are added in order, so the sums do not depend on the cores.
		wave, workers := 1, 0
		if c < concurrentChunkChannels {
			wave, workers = min(chunks, runtime.GOMAXPROCS(0)), 1
		}
		parts := make([]*[]float32, wave)
		for j := range parts {
			parts[j] = chunkProducts(c * c)
			defer partPool.Put(parts[j])
		}
		for k0 := 0; k0 < chunks; k0 += wave {
			w := min(wave, chunks-k0)
			simd.Parallel(w, w, func(j int) {
				o0 := (k0 + j) * per
				r := runs[o0:min(o0+per, outer)]
				simd.GemmRuns(workers, c, c, len(r)*inner, simd.RunMatrix{Data: xa, RowStride: inner, Runs: r},
					simd.RunMatrix{Data: xb, RowStride: inner, Runs: r}, *parts[j], c)
			})
			for j := range w {
				s.addPart(*parts[j])
			}
		}
	}
	addChannelSums(xa, outer, c, inner, s.sumA, s.sqA)
	addChannelSums(xb, outer, c, inner, s.sumB, s.sqB)
	s.n += float64(outer * inner)
	return nil
}

// addPart adds a chunk's float32 cross products to the float64 sums.
func (s *channelStats) addPart(part []float32) {
	for i, v := range part {
		s.cross[i] += float64(v)
	}
}

// partPool holds the scratch of add's chunk products, shared by the sites
// (a site of 2,048 channels needs 16 MB) and by the two runs' goroutines.
var partPool sync.Pool

// chunkProducts returns scratch for n float32 products from partPool.
func chunkProducts(n int) *[]float32 {
	if p, ok := partPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	p := make([]float32, n)
	return &p
}

// activationStats gathers, for every group of ga, the statistics of each
// of its activation sites over ds (a and b running concurrently, see
// pairedPasses).
func activationStats(a, b *onnx.Model, ga *graph.Analysis, ds *eval.Dataset, opts Options) ([][]*channelStats, error) {
	if err := sitelayout.CheckFit(ga, a, b); err != nil {
		return nil, err
	}
	sa, err := infer.NewSession(a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name, err)
	}
	sb, err := infer.NewSession(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name, err)
	}
	if len(sa.Inputs()) != 1 {
		return nil, fmt.Errorf("%s: activation matching needs a model with one input", a.Name)
	}
	input := sa.Inputs()[0].Name
	// The analysis in a's form, and b's names for a's values.
	onA, err := ga.For(a)
	if err != nil {
		return nil, err
	}
	c, err := graph.Correspond(a, b)
	if err != nil {
		return nil, err
	}
	stats := make([][]*channelStats, len(ga.Groups))
	for g, grp := range onA.Groups {
		for _, s := range grp.Activations {
			if s.Block > 1 || s.Offset != 0 {
				continue // the same channels seen before a Flatten or Concat
			}
			channels := grp.Size * max(s.Repeat, 1)
			if d, ok := ga.Shape(s.Value); ok && s.Axis < len(d) && d[s.Axis] >= 0 && int(d[s.Axis]) != channels {
				continue // a part of a wider axis (a packed projection): seen again after its Slice
			}
			cs := newChannelStats(s.Value, s.Axis, channels)
			cs.repeat, cs.perBlock = max(s.Repeat, 1), grp.Size/max(grp.Blocks, 1)
			var ok bool
			if cs.valueB, ok = c.Value(s.Value); !ok {
				continue // inside an op b computes as one node
			}
			stats[g] = append(stats[g], cs)
		}
		if len(stats[g]) == 0 {
			return nil, fmt.Errorf("group %d has no activation to match on", g)
		}
	}
	if err := deriveBatchNormSites(a, b, stats); err != nil {
		return nil, err
	}
	var sites []*channelStats
	for _, gs := range stats {
		for _, s := range gs {
			if s.from == nil {
				sites = append(sites, s)
			}
		}
	}
	if err := pairedPasses(sa, sb, a.Name, b.Name, input, sites, ds, opts); err != nil {
		return nil, err
	}
	return stats, nil
}

// deriveBatchNormSites marks the sites of stats that a BatchNormalization
// in inference mode computes from another site of the same group, in a and
// in b: y = γ·(x − μ)/√(σ² + ε) + β per channel is an affine map of x, so
// y's covariances and deviations follow from x's, and its correlations are
// computed from them by the same formula, without multiplying y's values
// out (a third of the products on Conv → BatchNorm → Relu chains). They
// agree with y's own to rounding.
func deriveBatchNormSites(a, b *onnx.Model, stats [][]*channelStats) error {
	producerA, producerB := producers(a), producers(b)
	srcA, srcB := graph.NewSources(a), graph.NewSources(b)
	for _, gs := range stats {
		byValue := map[string]*channelStats{}
		for _, s := range gs {
			byValue[s.value] = s
		}
		for _, s := range gs {
			na, okA := producerA[s.value]
			nb, okB := producerB[s.valueB]
			if !okA || !okB {
				continue
			}
			x := inferenceBatchNormInput(a, na)
			if x == "" || x == s.value {
				continue
			}
			from := byValue[x]
			if from == nil || from.from != nil || from.channels != s.channels || from.repeat != s.repeat || inferenceBatchNormInput(b, nb) != from.valueB {
				continue
			}
			scaleA, err := batchNormScales(a, srcA, na, s.channels)
			if err != nil {
				return err
			}
			scaleB, err := batchNormScales(b, srcB, nb, s.channels)
			if err != nil {
				return err
			}
			if scaleA == nil || scaleB == nil {
				continue
			}
			s.from, s.scaleA, s.scaleB = from, scaleA, scaleB
		}
	}
	return nil
}

// producers maps each node output of m to its node's index.
func producers(m *onnx.Model) map[string]int {
	p := map[string]int{}
	for i, n := range m.Proto.GetGraph().GetNode() {
		for _, o := range n.GetOutput() {
			if o != "" {
				p[o] = i
			}
		}
	}
	return p
}

// inferenceBatchNormInput is the input X of node ni when it is a
// BatchNormalization in inference mode with one output, else "".
func inferenceBatchNormInput(m *onnx.Model, ni int) string {
	n := m.Proto.GetGraph().GetNode()[ni]
	if n.GetOpType() != "BatchNormalization" || len(n.GetInput()) < 5 || len(n.GetOutput()) != 1 || attrInt(n, "training_mode", 0) != 0 {
		return ""
	}
	return n.GetInput()[0]
}

// batchNormScales returns the c per-channel scales γ/√(σ² + ε) of
// BatchNormalization node ni, or nil when γ or σ² is not a constant.
func batchNormScales(m *onnx.Model, src *graph.Sources, ni, c int) ([]float64, error) {
	var v [2][]float64
	for k, input := range []int{1, 4} {
		t := sitelayout.UseTensor(m, src, graph.WeightSite{Node: ni, Input: input})
		if t == nil {
			return nil, nil
		}
		var err error
		if v[k], err = m.Float64s(t); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		if len(v[k]) != c {
			return nil, nil
		}
	}
	eps := float64(attrFloat(m.Proto.GetGraph().GetNode()[ni], "epsilon", 1e-5))
	scale := make([]float64, c)
	for i := range scale {
		scale[i] = v[0][i] / math.Sqrt(v[1][i]+eps)
	}
	return scale, nil
}

// addChannelSums adds Σx and Σx² over each channel of x (outer × c ×
// inner) to sum and sq, in float64, the channels split over the cores.
// Each channel's sums are computed by one goroutine in a fixed order, so
// the result does not depend on the number of cores.
func addChannelSums(x []float32, outer, c, inner int, sum, sq []float64) {
	parts := min(c, 4*runtime.GOMAXPROCS(0))
	simd.Parallel(runtime.GOMAXPROCS(0), parts, func(p int) {
		lo, hi := p*c/parts, (p+1)*c/parts
		for o := 0; o < outer; o++ {
			if inner == 1 {
				for j, v := range x[o*c+lo : o*c+hi] {
					sum[lo+j] += float64(v)
					sq[lo+j] += float64(v) * float64(v)
				}
				continue
			}
			for ch := lo; ch < hi; ch++ {
				s, q := simd.SumSqF64(x[(o*c+ch)*inner : (o*c+ch+1)*inner])
				sum[ch] += s
				sq[ch] += q
			}
		}
	})
}

// pairedPasses runs a (session sa) and b (session sb) over ds batch by
// batch, the two models concurrently, and adds each site's values to its
// statistics as soon as both models have computed them (see sitePairing):
// nothing is kept of a batch but the activations that are waiting for
// their partner, so memory does not grow with the data or the number of
// sites.
func pairedPasses(sa, sb *infer.Session, nameA, nameB, input string, sites []*channelStats, ds *eval.Dataset, opts Options) error {
	siteOf := [2]map[string]int{{}, {}}
	names := [2][]string{}
	for k, s := range sites {
		for side, v := range [2]string{s.value, s.valueB} {
			if _, dup := siteOf[side][v]; dup {
				return fmt.Errorf("activation %s is listed twice", v)
			}
			siteOf[side][v] = k
			names[side] = append(names[side], v)
		}
	}
	return eachBatch(opts.Context, ds, opts.batch(), false, opts.Progress, func(xt *infer.Tensor) error {
		x := map[string]*infer.Tensor{input: xt}
		p := newSitePairing(sites)
		var errB error
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, errB = sb.Run(x, infer.Observe(names[1], func(v string, t *infer.Tensor) error { return p.arrive(1, siteOf[1][v], t) }))
			p.finish(1)
		}()
		_, errA := sa.Run(x, infer.Observe(names[0], func(v string, t *infer.Tensor) error { return p.arrive(0, siteOf[0][v], t) }))
		p.finish(0)
		<-done
		if p.err != nil {
			return p.err // the statistics failed, and so did the runs
		}
		if errA != nil {
			return fmt.Errorf("%s: %w", nameA, errA)
		}
		if errB != nil {
			return fmt.Errorf("%s: %w", nameB, errB)
		}
		for k, s := range sites {
			if p.added[k] != 2 {
				return fmt.Errorf("activation %s was not computed", s.value)
			}
		}
		return nil
	})
}

// eachBatch runs fn on the batches of ds in order: batches of size
// samples (the last one smaller), or, with equalSizes, ⌈N/size⌉ batches
// whose sizes differ by at most one sample. It checks ctx before each
// batch and reports progress after it. Each batch is read from ds into one
// reused buffer, so fn must not keep x.
func eachBatch(ctx context.Context, ds *eval.Dataset, size int, equalSizes bool, progress func(done, total int), fn func(x *infer.Tensor) error) error {
	n := ds.N()
	batches := (n + size - 1) / size
	rd := ds.NewReader()
	for k := 0; k < batches; k++ {
		if err := sitelayout.ContextErr(ctx); err != nil {
			return err
		}
		from, to := k*size, min((k+1)*size, n)
		if equalSizes {
			from, to = k*n/batches, (k+1)*n/batches
		}
		x, err := rd.Batch(from, to)
		if err != nil {
			return err
		}
		if err := fn(x); err != nil {
			return err
		}
		if progress != nil {
			progress(to, n)
		}
	}
	return nil
}

// sitePairing meets the two models' runs of one batch at each site: the
// first run to compute a site's value waits there, its buffer still
// alive, until the other computes the same site, which then adds the pair
// to the site's statistics. A run never waits while the other is waiting
// (at another site, when the two graphs compute their sites in another
// order): it keeps a copy of its value instead and goes on. So the runs
// advance in step, neither deadlocks, and at most the out-of-order sites
// are copied.
type sitePairing struct {
	mu      sync.Mutex
	changed *sync.Cond
	sites   []*channelStats
	waiting [2]int                   // per side: the site it waits at, or -1
	value   [2]*infer.Tensor         // per side: its value at that site
	copies  [2]map[int]*infer.Tensor // per side: values left for the other side
	added   []int                    // per site: 2 once the pair was added
	copied  int                      // values copied (sites met out of order)
	over    [2]bool                  // per side: its run has returned
	err     error
}

func newSitePairing(sites []*channelStats) *sitePairing {
	p := &sitePairing{sites: sites, waiting: [2]int{-1, -1}, copies: [2]map[int]*infer.Tensor{{}, {}}, added: make([]int, len(sites))}
	p.changed = sync.NewCond(&p.mu)
	return p
}

// arrive is side's observer: t is its value at site k.
func (p *sitePairing) arrive(side, k int, t *infer.Tensor) error {
	other := 1 - side
	p.mu.Lock()
	if p.err != nil {
		defer p.mu.Unlock()
		return p.err
	}
	var partner *infer.Tensor
	if p.waiting[other] == k {
		partner = p.value[other]
	} else if c, ok := p.copies[other][k]; ok {
		partner = c
		delete(p.copies[other], k)
	}
	if partner != nil {
		p.mu.Unlock()
		err := p.add(k, side, t, partner)
		p.mu.Lock()
		if p.waiting[other] == k {
			p.waiting[other] = -1 // release the partner
		}
		if err != nil && p.err == nil {
			p.err = err
		}
		p.added[k] = 2
		p.changed.Broadcast()
		err = p.err
		p.mu.Unlock()
		return err
	}
	if p.waiting[other] >= 0 || p.over[other] {
		p.copied++
		p.copies[side][k] = t.Clone()
		p.mu.Unlock()
		return nil
	}
	p.waiting[side], p.value[side] = k, t
	for p.waiting[side] == k && p.err == nil && !p.over[other] {
		p.changed.Wait()
	}
	if p.waiting[side] == k {
		// The other run ended (or failed) without this site: if it is
		// still to come, its value must be kept.
		p.waiting[side], p.value[side] = -1, nil
		if p.err == nil {
			p.copied++
			p.copies[side][k] = t.Clone()
		}
	}
	err := p.err
	p.mu.Unlock()
	return err
}

// finish records that side's run returned: the other side no longer
// waits for it.
func (p *sitePairing) finish(side int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.over[side] = true
	p.changed.Broadcast()
}

// add adds the pair (t from side, partner from the other side) to site k.
func (p *sitePairing) add(k, side int, t, partner *infer.Tensor) error {
	ta, tb := t, partner
	if side == 1 {
		ta, tb = partner, t
	}
	s := p.sites[k]
	if ta.DType != infer.Float32 || tb.DType != infer.Float32 {
		return fmt.Errorf("activation %s is not float32", s.value)
	}
	if !slices.Equal(ta.Shape, tb.Shape) {
		return fmt.Errorf("activation %s is %v in one model but %v in the other", s.value, ta.Shape, tb.Shape)
	}
	return s.add(ta.Shape, ta.F, tb.F)
}

// addUnitCorrelation adds correlation() over the n units of the group to
// dst (n×n): for repeated channels, the mean over the copies of the
// correlation of A's copy of unit u with B's same copy of unit v (the
// copies move together).
func (s *channelStats) addUnitCorrelation(n int, dst []float64) {
	if s.repeat <= 1 {
		s.addCorrelation(dst)
		return
	}
	corr := s.correlation()
	for u := range n {
		for v := range n {
			sum := 0.0
			for j := range s.repeat {
				sum += corr[sitelayout.UnitIndex(u, j, s.perBlock, s.repeat, 1, 0)*s.channels+sitelayout.UnitIndex(v, j, s.perBlock, s.repeat, 1, 0)]
			}
			dst[u*n+v] += sum / float64(s.repeat)
		}
	}
}

// correlation returns the c×c matrix of Pearson correlations between A's
// channel i and B's channel j (see addCorrelation).
func (s *channelStats) correlation() []float64 {
	out := make([]float64, s.channels*s.channels)
	s.addCorrelation(out)
	return out
}

// addCorrelation adds the c×c matrix of Pearson correlations between A's
// channel i and B's channel j to dst. Correlations, not raw products, so
// that every site counts alike however its activations are scaled. Rows
// are split over the cores (a ResNet-50 has sites of 2,048 channels); each
// element is computed by one goroutine, so the sums do not depend on them.
func (s *channelStats) addCorrelation(dst []float64) {
	c := s.channels
	src := s
	if s.from != nil {
		src = s.from
	}
	if src.n == 0 {
		return
	}
	meanA, meanB := make([]float64, c), make([]float64, c)
	stdA, stdB := make([]float64, c), make([]float64, c)
	for i := 0; i < c; i++ {
		meanA[i], meanB[i] = src.sumA[i]/src.n, src.sumB[i]/src.n
		stdA[i] = math.Sqrt(math.Max(src.sqA[i]/src.n-meanA[i]*meanA[i], 0))
		stdB[i] = math.Sqrt(math.Max(src.sqB[i]/src.n-meanB[i]*meanB[i], 0))
	}
	scaleA, scaleB := s.scaleA, s.scaleB // y = scale·x + shift per channel
	if s.from == nil {
		scaleA, scaleB = nil, nil
	}
	const eps = 1e-8
	threads := runtime.GOMAXPROCS(0)
	parts := min(c, 4*threads)
	simd.Parallel(threads, parts, func(p int) {
		for i := p * c / parts; i < (p+1)*c/parts; i++ {
			row, cross := dst[i*c:(i+1)*c], src.cross[i*c:(i+1)*c]
			for j := range row {
				cov := cross[j]/src.n - meanA[i]*meanB[j]
				sa, sb := stdA[i], stdB[j]
				if scaleA != nil {
					// The moments of y from those of x: cov scales by
					// a_i·b_j, the deviations by |a_i| and |b_j|.
					cov *= scaleA[i] * scaleB[j]
					sa *= math.Abs(scaleA[i])
					sb *= math.Abs(scaleB[j])
				}
				row[j] += cov / (sa*sb + eps)
			}
		}
	})
}

// Match is the paper's activation matching: both models run on
// the data, and each group's permutation is the assignment that maximises
// the summed correlation between A's and B's activations over every
// activation site the group permutes (a residual stream pools all its tied
// sites). Each group is solved once and independently.
func Match(a, b *onnx.Model, ga *graph.Analysis, ds *eval.Dataset, opts Options) (permute.Perms, error) {
	stats, err := activationStats(a, b, ga, ds, opts)
	if err != nil {
		return nil, err
	}
	var solver lap.Solver
	perms := make(permute.Perms, len(ga.Groups))
	sets := sitelayout.SetsOf(ga)
	costs := make([][]float64, len(ga.Groups))
	for g, gs := range stats {
		n := ga.Groups[g].Size
		cost := make([]float64, n*n)
		for k, s := range gs {
			s.addUnitCorrelation(n, cost)
			gs[k] = nil // its sums (8·c² bytes) are no longer needed
		}
		if sets[g] >= 0 {
			costs[g] = cost // solved with its block set below
			continue
		}
		p, _, err := solver.Solve(n, cost)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", g, err)
		}
		perms[g] = p
	}
	// Block-structured groups: per pair of heads the within-head
	// assignments, then the head assignment (see sitelayout.BlockSolve).
	for _, set := range ga.BlockSets {
		cs := make([][]float64, len(set))
		for k, g := range set {
			cs[k] = costs[g]
		}
		ps, err := sitelayout.SolveSet(&solver, ga.Groups, set, cs)
		if err != nil {
			return nil, fmt.Errorf("groups %v: %w", set, err)
		}
		for k, g := range set {
			perms[g] = ps[k]
		}
	}
	return perms, nil
}
