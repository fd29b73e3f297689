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

// slerpInto sets out to the spherical interpolation between a (t = 0) and b
// (t = 1) of the flattened tensors, falling back to linear interpolation
// when they are nearly colinear, as mergekit's slerp (same thresholds).
func slerpInto(out, a, b []float64, t float64) {
	const dotThreshold, eps = 0.9995, 1e-8
	na, nb := norm(a), norm(b)
	ia, ib := 1.0, 1.0
	if na > eps {
		ia = 1 / na
	}
	if nb > eps {
		ib = 1 / nb
	}
	dot := 0.0
	for k := range a {
		dot += a[k] * ia * b[k] * ib
	}
	if math.Abs(dot) > dotThreshold {
		for k := range out {
			out[k] = (1-t)*a[k] + t*b[k]
		}
		return
	}
	theta0 := math.Acos(dot)
	sin0 := math.Sin(theta0)
	s0 := math.Sin(theta0-theta0*t) / sin0
	s1 := math.Sin(theta0*t) / sin0
	for k := range out {
		out[k] = s0*a[k] + s1*b[k]
	}
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// modelStockInto sets out to t·mean(θᵢ) + (1 − t)·θ₀ with t = N·cos /
// (1 + (N − 1)·cos), cos the mean cosine between pairs of task vectors θᵢ −
// θ₀ (Jang et al. 2024, as mergekit's model_stock). With filterWise, cos
// and t are per row of the tensor (its first axis), else per tensor.
// Pairs are read one at a time: memory stays four tensors for any N.
func modelStockInto(out []float64, src tensorSource, rows int, s *scratch) error {
	n := len(out)
	base := s.get(0, n)
	if err := src.readBase(base); err != nil {
		return err
	}
	di, dj := s.get(1, n), s.get(2, n)
	N := src.numModels()
	cosSum := make([]float64, rows)
	width := n / rows
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
			for r := 0; r < rows; r++ {
				var dot, ni, nj float64
				for k := r * width; k < (r+1)*width; k++ {
					a, b := di[k], dj[k]-base[k]
					dot += a * b
					ni += a * a
					nj += b * b
				}
				c := dot / math.Max(math.Sqrt(ni)*math.Sqrt(nj), 1e-6)
				cosSum[r] += math.Max(-1, math.Min(1, c))
			}
		}
	}
	if err := linearInto(out, src, ones(N), true, s); err != nil { // the mean, in out
		return err
	}
	pairs := float64(N * (N - 1) / 2)
	for r := 0; r < rows; r++ {
		c := cosSum[r] / pairs
		t := 0.0 // task vectors pointing apart (den → 0): keep the base
		if den := 1 + float64(N-1)*c; den > 1e-12 {
			t = float64(N) * c / den
		}
		for k := r * width; k < (r+1)*width; k++ {
			out[k] = t*out[k] + (1-t)*base[k]
		}
	}
	return nil
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
