package activation

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// ResetBatchNorm recomputes the running mean and variance of every
// BatchNormalization node of m from the data: the statistics the network
// really produces, as a merged model's interpolated statistics no longer fit
// its weights. The pass runs every BatchNormalization in batch-statistics
// mode, so each layer's statistics are measured on the output of the layers
// before it as they will be re-normalised (what a PyTorch reset in train
// mode does). Statistics tensors shared with other nodes are copied first.
func ResetBatchNorm(m *onnx.Model, ds *eval.Dataset, opts Options) error {
	sess, err := infer.NewSession(m)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	if len(sess.Inputs()) != 1 {
		return fmt.Errorf("%s: BatchNorm reset needs a model with one input", m.Name)
	}
	input := sess.Inputs()[0].Name
	var acc infer.BatchNormAccumulator
	err = eachBatch(opts.Context, ds, opts.batch(), false, opts.Progress, func(x *infer.Tensor) error {
		if _, err := sess.Run(map[string]*infer.Tensor{input: x}, infer.BatchNormStatistics(acc.Add)); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	nodes := m.Proto.Graph.Node
	for _, name := range acc.Nodes() {
		ni := nodeIndex(nodes, name)
		if ni < 0 || len(nodes[ni].Input) < 5 {
			return fmt.Errorf("%s: BatchNormalization %q not found", m.Name, name)
		}
		mean, variance, _ := acc.MeanVar(name, false)
		// Mean, then variance: the order in which shared statistics get
		// their own copies fixes the copies' names and places in the file.
		for _, st := range []struct {
			input  int
			values []float32
		}{{3, mean}, {4, variance}} {
			t, err := ownTensor(m, ni, st.input)
			if err != nil {
				return err
			}
			if err := m.SetFloat32s(t, st.values); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
		}
	}
	return nil
}

// nodeIndex finds a node by name, or by "#index" for unnamed nodes (how
// infer names them).
func nodeIndex(nodes []*onnxpb.NodeProto, name string) int {
	for i, n := range nodes {
		if n.GetName() == name && name != "" {
			return i
		}
	}
	if len(name) > 1 && name[0] == '#' {
		if i, err := strconv.Atoi(name[1:]); err == nil && i >= 0 && i < len(nodes) {
			return i
		}
	}
	return -1
}

// ownTensor returns the weight that node ni reads at input k, first giving
// the node a copy of its own (see sitelayout.CopyAs) if any other node reads the same
// tensor (directly or through forwarders: permute.Identity aliases, Casts).
func ownTensor(m *onnx.Model, ni, k int) (*onnxpb.TensorProto, error) {
	g := m.Proto.Graph
	src := graph.NewSources(m)
	name := g.Node[ni].Input[k]
	t := sitelayout.UseTensor(m, src, graph.WeightSite{Node: ni, Input: k})
	if t == nil {
		return nil, fmt.Errorf("%s: input %q of node %q is not a weight", m.Name, name, g.Node[ni].GetName())
	}
	readers := 0
	for i, n := range g.Node {
		for _, in := range n.Input {
			if !src.Forwarder(i) && src.Tensor(in) == t {
				readers++
			}
		}
	}
	for _, o := range g.Output {
		if src.Tensor(o.GetName()) == t {
			readers++
		}
	}
	if readers == 1 {
		return t, nil
	}
	c, err := sitelayout.CopyAs(m, t, sitelayout.UniqueName(m, name+"_own"), src.ElemType(name))
	if err != nil {
		return nil, err
	}
	g.Node[ni].Input[k] = c.GetName()
	return c, nil
}

// repairSite is a layer output whose channels REPAIR rescales, and the node
// whose weights absorb the correction.
type repairSite struct {
	node    int
	value   string
	weights int // input index of the per-channel scale (BN γ) or weight matrix
	outAxis int // axis of the weight holding output channels
}

// ErrNothingToRepair reports a model without the layer outputs REPAIR
// corrects (BatchNormalization, Conv or Gemm outputs in a group).
var ErrNothingToRepair = errors.New("no layer outputs to repair (REPAIR corrects BatchNormalization, Conv and Gemm outputs)")

// Repair holds the endpoint statistics that REPAIR (Jordan et al. 2022)
// restores in interpolated models.
type Repair struct {
	sites       []repairSite
	meanA, stdA [][]float64
	meanB, stdB [][]float64
	opts        Options
	data        *eval.Dataset
}

// PrepareRepair measures, on the data, the per-channel mean and standard
// deviation of every hidden layer output of a and b (b aligned to a). The
// layer outputs corrected are those of BatchNormalization nodes and of Conv
// and Gemm nodes not followed by one, where the channels belong to a group.
func PrepareRepair(a, b *onnx.Model, ga *graph.Analysis, ds *eval.Dataset, opts Options) (*Repair, error) {
	if err := sitelayout.CheckFit(ga, a, b); err != nil {
		return nil, err
	}
	r := &Repair{opts: opts, data: ds}
	onA, err := ga.For(a)
	if err != nil {
		return nil, err
	}
	hidden := map[string]bool{}
	for _, grp := range onA.Groups {
		for _, s := range grp.Activations {
			if s.Block <= 1 && s.Offset == 0 && s.Axis == 1 {
				hidden[s.Value] = true
			}
		}
	}
	nodes := a.Proto.Graph.Node
	consumers := map[string][]int{}
	for i, n := range nodes {
		for _, in := range n.Input {
			consumers[in] = append(consumers[in], i)
		}
	}
	src := graph.NewSources(a)
	for i, n := range nodes {
		if len(n.Output) == 0 || !hidden[n.Output[0]] {
			continue
		}
		out := n.Output[0]
		site := repairSite{node: i, value: out}
		switch n.GetOpType() {
		case "BatchNormalization":
			site.weights, site.outAxis = 1, 0
		case "Conv":
			if cs := consumers[out]; len(cs) == 1 && nodes[cs[0]].GetOpType() == "BatchNormalization" {
				continue // corrected at the BatchNormalization
			}
			site.weights, site.outAxis = 1, 0
		case "Gemm":
			if cs := consumers[out]; len(cs) == 1 && nodes[cs[0]].GetOpType() == "BatchNormalization" {
				continue
			}
			if attrInt(n, "transA", 0) != 0 || attrFloat(n, "alpha", 1) != 1 || attrFloat(n, "beta", 1) != 1 {
				continue
			}
			site.weights, site.outAxis = 1, 1
			if attrInt(n, "transB", 0) != 0 {
				site.outAxis = 0
			}
		default:
			continue
		}
		if len(n.Input) <= site.weights || src.Tensor(n.Input[site.weights]) == nil {
			continue
		}
		r.sites = append(r.sites, site)
	}
	if len(r.sites) == 0 {
		return nil, fmt.Errorf("%s: %w", a.Name, ErrNothingToRepair)
	}
	// b may name its values differently (another form of a's graph).
	c, err := graph.Correspond(a, b)
	if err != nil {
		return nil, err
	}
	// Both models at once, each on a core of its own when their kernels
	// leave one.
	var errB error
	done := make(chan struct{})
	progress := newMinProgress(opts.Progress)
	go func() {
		defer close(done)
		r.meanB, r.stdB, errB = r.measure(b, c, progress.side(1))
	}()
	r.meanA, r.stdA, err = r.measure(a, nil, progress.side(0))
	<-done
	if err != nil {
		return nil, err
	}
	if errB != nil {
		return nil, errB
	}
	return r, nil
}

// minProgress reports the progress of two concurrent passes over the same
// data as that of the slower one.
type minProgress struct {
	mu   sync.Mutex
	fn   func(done, total int)
	done [2]int
	last int
}

func newMinProgress(fn func(done, total int)) *minProgress { return &minProgress{fn: fn} }

// side returns the progress callback of one of the passes.
func (p *minProgress) side(k int) func(done, total int) {
	if p.fn == nil {
		return nil
	}
	return func(done, total int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.done[k] = done
		if d := min(p.done[0], p.done[1]); d > p.last {
			p.last = d
			p.fn(d, total)
		}
	}
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a.GetI()
		}
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a.GetF()
		}
	}
	return def
}

// channelMoments accumulates the per-channel sums of a layer output's
// values and of their squares over a data set, batch by batch.
type channelMoments struct {
	sum, sq []float64
	count   float64
}

// add accumulates t (batch × channels × ...), and stores the batch's own
// per-channel sums in batchSum and batchSq when they are not nil (zeroed,
// len = channels each).
func (cm *channelMoments) add(t *infer.Tensor, batchSum, batchSq []float64) error {
	if t.DType != infer.Float32 || len(t.Shape) < 2 || t.Len() == 0 {
		return fmt.Errorf("value of shape %v has no channel axis", t.Shape)
	}
	c := t.Shape[1]
	inner := t.Len() / (t.Shape[0] * c)
	if cm.sum == nil {
		cm.sum, cm.sq = make([]float64, c), make([]float64, c)
	}
	if len(cm.sum) != c {
		return fmt.Errorf("value of shape %v: %d channels, %d before", t.Shape, c, len(cm.sum))
	}
	if batchSum == nil {
		batchSum, batchSq = make([]float64, c), make([]float64, c)
	}
	addChannelSums(t.F, t.Shape[0], c, inner, batchSum, batchSq)
	for ch := range batchSum {
		cm.sum[ch] += batchSum[ch]
		cm.sq[ch] += batchSq[ch]
	}
	cm.count += float64(t.Shape[0] * inner)
	return nil
}

// meanStd returns the per-channel mean and (population) standard deviation.
func meanStd(sum, sq []float64, n float64) (mean, std []float64) {
	mean, std = make([]float64, len(sum)), make([]float64, len(sum))
	for ch := range sum {
		mu := sum[ch] / n
		mean[ch] = mu
		std[ch] = math.Sqrt(math.Max(sq[ch]/n-mu*mu, 0))
	}
	return mean, std
}

// measure returns per-channel means and standard deviations at every site,
// streamed: each site's values are summed as the run computes them. m is
// the model the sites were found in, or (c not nil) another form of it
// that c pairs with it.
func (r *Repair) measure(m *onnx.Model, c *graph.Correspondence, progress func(done, total int)) (mean, std [][]float64, err error) {
	sess, err := infer.NewSession(m)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	if len(sess.Inputs()) != 1 {
		return nil, nil, fmt.Errorf("%s: REPAIR needs a model with one input", m.Name)
	}
	input := sess.Inputs()[0].Name
	names := make([]string, len(r.sites))
	siteOf := map[string]int{}
	for i, s := range r.sites {
		names[i] = s.value
		if c != nil {
			var ok bool
			if names[i], ok = c.Value(names[i]); !ok {
				return nil, nil, fmt.Errorf("%s: no value corresponds to %s", m.Name, s.value)
			}
		}
		siteOf[names[i]] = i
	}
	moments := make([]channelMoments, len(r.sites))
	observe := infer.Observe(names, func(v string, t *infer.Tensor) error {
		return moments[siteOf[v]].add(t, nil, nil)
	})
	err = eachBatch(r.opts.Context, r.data, r.opts.batch(), false, progress, func(x *infer.Tensor) error {
		if _, err := sess.Run(map[string]*infer.Tensor{input: x}, observe); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	mean = make([][]float64, len(r.sites))
	std = make([][]float64, len(r.sites))
	for i := range r.sites {
		if moments[i].count == 0 {
			return nil, nil, fmt.Errorf("%s: value %s not computed", m.Name, names[i])
		}
		mean[i], std[i] = meanStd(moments[i].sum, moments[i].sq, moments[i].count)
	}
	return mean, std, nil
}

// Apply corrects m, the interpolation (1-λ)·a + λ·b, in place, in one pass
// over the data. At each site, in execution order, it measures the
// per-channel mean μ and standard deviation σ of the layer's output over
// the data and folds the affine map x ↦ (x − μ)·σ_t/σ + μ_t into the
// layer's weights and bias, where μ_t and σ_t interpolate the endpoints'
// statistics. Each layer is measured with the layers before it already
// corrected, as the BatchNorm reset does in batch-statistics mode: during
// the pass every site's output is corrected with the statistics of its own
// batch, so the layers after it see corrected inputs, while the data set's
// sums are gathered for the folded correction. m gains no nodes.
func (r *Repair) Apply(m *onnx.Model, lambda float64) error {
	if err := r.checkSites(m); err != nil {
		return err
	}
	sess, err := infer.NewSession(m)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	if len(sess.Inputs()) != 1 {
		return fmt.Errorf("%s: REPAIR needs a model with one input", m.Name)
	}
	input := sess.Inputs()[0].Name
	names := make([]string, len(r.sites))
	siteOf := map[string]int{}
	targetMean := make([][]float64, len(r.sites))
	targetStd := make([][]float64, len(r.sites))
	for i, s := range r.sites {
		names[i] = s.value
		siteOf[s.value] = i
		c := len(r.meanA[i])
		targetMean[i], targetStd[i] = make([]float64, c), make([]float64, c)
		for ch := 0; ch < c; ch++ {
			targetMean[i][ch] = (1-lambda)*r.meanA[i][ch] + lambda*r.meanB[i][ch]
			targetStd[i][ch] = (1-lambda)*r.stdA[i][ch] + lambda*r.stdB[i][ch]
		}
	}
	moments := make([]channelMoments, len(r.sites))
	observe := infer.Observe(names, func(v string, t *infer.Tensor) error {
		i := siteOf[v]
		c := len(targetMean[i])
		if len(t.Shape) < 2 || t.Shape[1] != c {
			return fmt.Errorf("%s has shape %v, %d channels when the repair was prepared", v, t.Shape, c)
		}
		bs, bq := make([]float64, c), make([]float64, c)
		if err := moments[i].add(t, bs, bq); err != nil {
			return fmt.Errorf("%s: %w", v, err)
		}
		mean, std := meanStd(bs, bq, float64(t.Len()/c))
		scale, shift := repairAffine(mean, std, targetMean[i], targetStd[i])
		correctChannels(t, scale, shift)
		return nil
	})
	// Batches of equal size (to one sample): a small last batch would
	// correct the layers after it with poorly estimated statistics.
	err = eachBatch(r.opts.Context, r.data, r.opts.batch(), true, r.opts.Progress, func(x *infer.Tensor) error {
		if _, err := sess.Run(map[string]*infer.Tensor{input: x}, observe); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, s := range r.sites {
		if moments[i].count == 0 {
			return fmt.Errorf("%s: value %s not computed", m.Name, s.value)
		}
		mean, std := meanStd(moments[i].sum, moments[i].sq, moments[i].count)
		scale, shift := repairAffine(mean, std, targetMean[i], targetStd[i])
		if err := foldAffine(m, s, scale, shift); err != nil {
			return err
		}
	}
	return nil
}

// repairAffine is the per-channel map x ↦ x·scale + shift that takes
// values of mean μ and deviation σ to the target μ_t and σ_t.
func repairAffine(mean, std, targetMean, targetStd []float64) (scale, shift []float64) {
	scale, shift = make([]float64, len(mean)), make([]float64, len(mean))
	for ch := range mean {
		scale[ch] = targetStd[ch] / (std[ch] + 1e-6)
		shift[ch] = targetMean[ch] - mean[ch]*scale[ch]
	}
	return scale, shift
}

// correctChannels applies x ↦ x·scale + shift per channel (axis 1) to t in
// place.
func correctChannels(t *infer.Tensor, scale, shift []float64) {
	c := len(scale)
	inner := t.Len() / (t.Shape[0] * c)
	rows := t.Shape[0] * c
	parts := min(rows, 4*runtime.GOMAXPROCS(0))
	simd.Parallel(runtime.GOMAXPROCS(0), parts, func(p int) {
		for r := p * rows / parts; r < (p+1)*rows/parts; r++ {
			a, b := float32(scale[r%c]), float32(shift[r%c])
			row := t.F[r*inner : (r+1)*inner]
			for k := range row {
				row[k] = row[k]*a + b
			}
		}
	})
}

// checkSites checks, before Apply changes anything, that m has the layers
// that r was prepared on, with as many output channels.
func (r *Repair) checkSites(m *onnx.Model) error {
	nodes := m.Proto.GetGraph().GetNode()
	src := graph.NewSources(m)
	for i, s := range r.sites {
		if s.node >= len(nodes) || len(nodes[s.node].Output) == 0 || nodes[s.node].Output[0] != s.value || s.weights >= len(nodes[s.node].Input) {
			return fmt.Errorf("%s: has no layer writing %s where the repair was prepared", m.Name, s.value)
		}
		t := sitelayout.UseTensor(m, src, graph.WeightSite{Node: s.node, Input: s.weights})
		if t == nil || s.outAxis >= len(t.Dims) || t.Dims[s.outAxis] != int64(len(r.meanA[i])) {
			return fmt.Errorf("%s: the layer writing %s does not have the %d channels the repair was prepared for", m.Name, s.value, len(r.meanA[i]))
		}
	}
	return nil
}

// foldAffine makes site s's layer output old·scale + shift per channel by
// scaling the layer's output weights and rewriting its bias.
func foldAffine(m *onnx.Model, s repairSite, scale, shift []float64) error {
	n := m.Proto.Graph.Node[s.node]
	wt, err := ownTensor(m, s.node, s.weights)
	if err != nil {
		return err
	}
	wv, err := m.Float64s(wt)
	if err != nil {
		return err
	}
	c := len(scale)
	if s.outAxis >= len(wt.Dims) || int(wt.Dims[s.outAxis]) != c {
		return fmt.Errorf("%s: node %q: weight %v has no output axis of %d", m.Name, n.GetName(), wt.Dims, c)
	}
	inner := 1
	for _, d := range wt.Dims[s.outAxis+1:] {
		inner *= int(d)
	}
	for i := range wv {
		wv[i] *= scale[(i/inner)%c]
	}
	if err := m.SetFloat64s(wt, wv); err != nil {
		return err
	}
	biasInput := 2 // Conv B, Gemm C, BatchNormalization B
	if len(n.Input) <= biasInput || n.Input[biasInput] == "" {
		// A bias-free Conv or Gemm gets a zero bias to absorb the shift,
		// in the type the layer reads its weight in (a weight stored in
		// fp16 may reach it through a Cast to float32).
		name := sitelayout.UniqueName(m, n.GetName()+"_repair_bias")
		dt := graph.NewSources(m).ElemType(n.Input[s.weights])
		b := &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(c)}, DataType: proto.Int32(int32(dt)), RawData: make([]byte, c*onnx.ElemSize(dt))}
		m.Proto.Graph.Initializer = append(m.Proto.Graph.Initializer, b)
		for len(n.Input) < biasInput {
			n.Input = append(n.Input, "")
		}
		n.Input = append(n.Input[:biasInput], name)
	}
	bt, err := ownTensor(m, s.node, biasInput)
	if err != nil {
		return err
	}
	bv, err := m.Float64s(bt)
	if err != nil {
		return err
	}
	if len(bv) != c {
		return fmt.Errorf("%s: node %q: bias has %d values for %d channels", m.Name, n.GetName(), len(bv), c)
	}
	for ch := range bv {
		bv[ch] = bv[ch]*scale[ch] + shift[ch]
	}
	return m.SetFloat64s(bt, bv)
}
