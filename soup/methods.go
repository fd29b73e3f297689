package soup

import (
	"cmp"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
)

// The functions here combine one tensor of every model. They read the
// models through a tensorSource, so that a method that needs a model's
// tensor twice (TIES: once for the sign election, once for the mean) reads
// it twice rather than keep every model's copy: memory stays a few tensors
// whatever the number of models.

// tensorSource reads one tensor of the base and of each fine-tuned model
// into dst (len(dst) is the tensor's size).
type tensorSource interface {
	numModels() int
	readBase(dst []float64) error
	readModel(i int, dst []float64) error
	// name identifies the tensor (seeds DARE's drops).
	name() string
}

// scratch holds reusable buffers of one tensor's size.
type scratch struct {
	bufs  [][]float64
	signs []int8
	enc   []byte // an output chunk, encoded
}

func (s *scratch) get(i, n int) []float64 {
	for len(s.bufs) <= i {
		s.bufs = append(s.bufs, nil)
	}
	if cap(s.bufs[i]) < n {
		s.bufs[i] = make([]float64, n)
	}
	return s.bufs[i][:n]
}

// linearInto sets out to Σ wᵢ·θᵢ, divided by Σ wᵢ when normalize is set
// (mergekit's linear; normalize defaults to true there and here).
func linearInto(out []float64, src tensorSource, weights []float64, normalize bool, s *scratch) error {
	clear(out)
	tmp := s.get(6, len(out))
	sum := 0.0
	for i := 0; i < src.numModels(); i++ {
		if err := src.readModel(i, tmp); err != nil {
			return err
		}
		w := weights[i]
		sum += w
		for k, v := range tmp {
			out[k] += w * v
		}
	}
	if normalize {
		for k := range out {
			out[k] /= sum
		}
	}
	return nil
}

// gtaOptions configures the generalized task arithmetic that mergekit's
// task_arithmetic, ties, dare_linear and dare_ties share.
type gtaOptions struct {
	weights   []float64
	densities []float64 // per model, 1 = keep everything
	sparsify  string    // "", "magnitude" (TIES) or "random" (DARE)
	consensus bool      // TIES sign election
	normalize bool      // divide by the (agreeing) weights' sum
	lambda    float64
	seed      uint64
}

// gtaInto sets out to base + λ·Σ wᵢ·mᵢ⊙sparsify(θᵢ − base) [/ Σ wᵢ·mᵢ],
// where mᵢ is 1, or with consensus 1 where sign(wᵢ·δᵢ) equals the sign of
// Σ wⱼ·δⱼ (ties to +), as mergekit's generalized_task_arithmetic. It keeps
// three tensors in float64 (base, one task vector, the sum in out), plus
// the elected signs and the divisor with consensus, and TIES's trim scratch.
func gtaInto(out []float64, src tensorSource, o gtaOptions, s *scratch) error {
	n := len(out)
	base := s.get(0, n)
	if err := src.readBase(base); err != nil {
		return err
	}
	delta := s.get(1, n)
	// TIES's cuts from the first pass, so the second need not select.
	cuts := make([]*magnitudeCut, src.numModels())
	// taskVector reads model i's sparsified task vector into delta.
	taskVector := func(i int) error {
		if err := src.readModel(i, delta); err != nil {
			return err
		}
		for k := range delta {
			delta[k] -= base[k]
		}
		switch o.sparsify {
		case "magnitude":
			if cuts[i] != nil {
				trimAt(delta, *cuts[i])
			} else {
				c := trimMagnitude(delta, o.densities[i], s.get(3, n))
				cuts[i] = &c
			}
		case "random":
			dropRandom(delta, o.densities[i], dropSeed(o.seed, i, src.name()))
		}
		return nil
	}
	clear(out) // the mixed delta
	if !o.consensus {
		wsum := 0.0
		for i := 0; i < src.numModels(); i++ {
			if err := taskVector(i); err != nil {
				return err
			}
			w := o.weights[i]
			wsum += w
			for k, v := range delta {
				out[k] += w * v
			}
		}
		if !o.normalize || math.Abs(wsum) < 1e-8 {
			wsum = 1
		}
		for k, d := range out {
			out[k] = base[k] + o.lambda*(d/wsum)
		}
		return nil
	}
	// Pass 1: the elected sign is the sign of the summed weighted deltas.
	for i := 0; i < src.numModels(); i++ {
		if err := taskVector(i); err != nil {
			return err
		}
		for k, v := range delta {
			out[k] += o.weights[i] * v
		}
	}
	if cap(s.signs) < n {
		s.signs = make([]int8, n)
	}
	sign := s.signs[:n]
	for k, v := range out {
		sign[k] = 1
		if v < 0 {
			sign[k] = -1
		}
	}
	// Pass 2: sum the entries whose weighted sign agrees.
	clear(out)
	divisor := s.get(4, n)
	clear(divisor)
	for i := 0; i < src.numModels(); i++ {
		if err := taskVector(i); err != nil {
			return err
		}
		w := o.weights[i]
		for k, v := range delta {
			if wv := w * v; signum(wv) == float64(sign[k]) {
				out[k] += wv
				divisor[k] += w
			}
		}
	}
	for k, d := range out {
		if o.normalize && divisor[k] != 0 {
			d /= divisor[k]
		}
		out[k] = base[k] + o.lambda*d
	}
	return nil
}

func signum(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// trimMagnitude keeps the k = ⌊density·n⌋ entries of v largest in
// magnitude (ties: the lower index first) and zeroes the rest, as
// mergekit's sparsify "magnitude". tmp has len(v). It returns the cut it
// used, for trimAt to apply again without selecting.
func trimMagnitude(v []float64, density float64, tmp []float64) magnitudeCut {
	if density >= 1 {
		return magnitudeCut{keepAll: true}
	}
	k := int(density * float64(len(v)))
	if k <= 0 {
		clear(v)
		return magnitudeCut{thr: math.Inf(1)}
	}
	for i, x := range v {
		tmp[i] = math.Abs(x)
	}
	// The k-th largest magnitude: entries above it are all kept, entries
	// equal to it are kept in index order until there are k.
	c := magnitudeCut{thr: kthLargest(tmp, k), equal: k}
	for _, x := range v {
		if math.Abs(x) > c.thr {
			c.equal--
		}
	}
	trimAt(v, c)
	return c
}

// magnitudeCut is where trimMagnitude cut a vector: entries above thr
// kept, and the first equal entries equal to it.
type magnitudeCut struct {
	thr     float64
	equal   int
	keepAll bool
}

// trimAt zeroes what c does not keep.
func trimAt(v []float64, c magnitudeCut) {
	if c.keepAll {
		return
	}
	equal := c.equal
	for i, x := range v {
		a := math.Abs(x)
		switch {
		case a > c.thr:
		case a == c.thr && equal > 0:
			equal--
		default:
			v[i] = 0
		}
	}
}

// kthLargest returns the k-th largest value of a (1-based), reordering a.
func kthLargest(a []float64, k int) float64 {
	// Quickselect for the (n−k)-th smallest with a median-of-three pivot.
	target := len(a) - k
	lo, hi := 0, len(a)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		p := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < p {
				i++
			}
			for a[j] > p {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case target <= j:
			hi = j
		case target >= i:
			lo = i
		default:
			return a[target]
		}
	}
	return a[target]
}

// dropRandom keeps each entry of v with probability density and scales
// the kept ones by 1/density (DARE). The draws come from seed alone.
func dropRandom(v []float64, density float64, seed uint64) {
	if density >= 1 {
		return
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	scale := 1 / density
	for i := range v {
		if rng.Float64() < density {
			v[i] *= scale
		} else {
			v[i] = 0
		}
	}
}

// dropSeed derives the seed of model i's drops in one tensor from the
// recipe's seed, so a tensor's drops depend on neither the order tensors
// are visited in nor the other tensors.
func dropSeed(seed uint64, model int, tensor string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(tensor))
	return seed ^ h.Sum64() ^ (uint64(model)+1)*0xbf58476d1ce4e5b9
}

// The whole-tensor methods below run in two passes so that a streamed
// build can feed them a tensor in chunks: accumulate sums over every chunk
// in element order, then finish each chunk with the sums. Fed the whole
// tensor as one chunk they compute the same bits.

// slerpSums are the sums slerp needs: Σa², Σb², Σab.
type slerpSums struct{ aa, bb, ab float64 }

func (s *slerpSums) add(a, b []float64) {
	for k := range a {
		s.aa += a[k] * a[k]
		s.bb += b[k] * b[k]
		s.ab += a[k] * b[k]
	}
}

// coefficients returns the weights of a and b at t: spherical
// interpolation of the directions, or linear interpolation when the two are
// nearly colinear, as mergekit's slerp (same thresholds).
func (s slerpSums) coefficients(t float64) (ca, cb float64) {
	const dotThreshold, eps = 0.9995, 1e-8
	na, nb := math.Sqrt(s.aa), math.Sqrt(s.bb)
	ia, ib := 1.0, 1.0
	if na > eps {
		ia = 1 / na
	}
	if nb > eps {
		ib = 1 / nb
	}
	dot := s.ab * ia * ib
	if math.Abs(dot) > dotThreshold {
		return 1 - t, t
	}
	theta0 := math.Acos(dot)
	sin0 := math.Sin(theta0)
	return math.Sin(theta0-theta0*t) / sin0, math.Sin(theta0*t) / sin0
}

// slerpInto sets out to the spherical interpolation between a (t = 0) and b
// (t = 1) of the flattened tensors.
func slerpInto(out, a, b []float64, t float64) {
	var s slerpSums
	s.add(a, b)
	ca, cb := s.coefficients(t)
	for k := range out {
		out[k] = ca*a[k] + cb*b[k]
	}
}

// stockSums are model_stock's sums per pair of task vectors (i < j) and
// row: Σ δᵢδⱼ, Σ δᵢ², Σ δⱼ².
type stockSums struct {
	rows        int
	dot, ni, nj []float64 // [pair*rows + row]
	models      int
}

func newStockSums(models, rows int) *stockSums {
	pairs := models * (models - 1) / 2
	return &stockSums{rows: rows, dot: make([]float64, pairs*rows), ni: make([]float64, pairs*rows), nj: make([]float64, pairs*rows), models: models}
}

// addStock adds one chunk (whole rows when rows > 1) to the sums. Pairs are
// read one at a time: memory stays three chunks for any number of models.
func addStock(sums *stockSums, src tensorSource, n int, s *scratch) error {
	base := s.get(0, n)
	if err := src.readBase(base); err != nil {
		return err
	}
	di, dj := s.get(1, n), s.get(2, n)
	N := src.numModels()
	width := n / sums.rows
	pair := 0
	for i := 0; i < N; i++ {
		if err := src.readModel(i, di); err != nil {
			return err
		}
		for k := range di {
			di[k] -= base[k]
		}
		for j := i + 1; j < N; j++ {
			if err := src.readModel(j, dj); err != nil {
				return err
			}
			for r := 0; r < sums.rows; r++ {
				at := pair*sums.rows + r
				dot, ni, nj := sums.dot[at], sums.ni[at], sums.nj[at]
				for k := r * width; k < (r+1)*width; k++ {
					a, b := di[k], dj[k]-base[k]
					dot += a * b
					ni += a * a
					nj += b * b
				}
				sums.dot[at], sums.ni[at], sums.nj[at] = dot, ni, nj
			}
			pair++
		}
	}
	return nil
}

// ratios returns model_stock's t per row: N·cos / (1 + (N − 1)·cos), cos
// the mean cosine between pairs of task vectors (Jang et al. 2024, as
// mergekit's model_stock), or 0 (the base) where the denominator is not
// positive.
func (sums *stockSums) ratios() []float64 {
	N := sums.models
	pairs := N * (N - 1) / 2
	t := make([]float64, sums.rows)
	for r := range t {
		cosSum := 0.0
		for p := 0; p < pairs; p++ {
			at := p*sums.rows + r
			c := sums.dot[at] / math.Max(math.Sqrt(sums.ni[at])*math.Sqrt(sums.nj[at]), 1e-6)
			cosSum += math.Max(-1, math.Min(1, c))
		}
		c := cosSum / float64(pairs)
		if den := 1 + float64(N-1)*c; den > 1e-12 {
			t[r] = float64(N) * c / den
		}
	}
	return t
}

// finishStock sets out (one chunk, whole rows when rows > 1) to t·mean(θᵢ)
// + (1 − t)·θ₀ with t from ratios.
func finishStock(out []float64, src tensorSource, t []float64, s *scratch) error {
	n := len(out)
	base := s.get(0, n)
	if err := src.readBase(base); err != nil {
		return err
	}
	if err := linearInto(out, src, ones(src.numModels()), true, s); err != nil { // the mean, in out
		return err
	}
	width := n / len(t)
	for r, tr := range t {
		for k := r * width; k < (r+1)*width; k++ {
			out[k] = tr*out[k] + (1-tr)*base[k]
		}
	}
	return nil
}

// modelStockInto sets out to model_stock's result for a whole tensor: with
// rows > 1 (filter_wise), t per row of the tensor (its first axis).
func modelStockInto(out []float64, src tensorSource, rows int, s *scratch) error {
	sums := newStockSums(src.numModels(), rows)
	if err := addStock(sums, src, len(out), s); err != nil {
		return err
	}
	return finishStock(out, src, sums.ratios(), s)
}

func ones(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	return keys
}
