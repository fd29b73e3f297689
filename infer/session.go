package infer

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Session is a model compiled for execution: nodes in topological order, each
// bound to a kernel, with the constant parts of the graph already evaluated.
// A Session is safe for concurrent use by several goroutines.
type Session struct {
	model   *onnx.Model
	opset   int
	threads int

	names  []string       // value slot -> tensor name
	slotOf map[string]int // tensor name -> value slot
	dtypes []DType        // value slot -> element type
	consts []*Tensor      // value slot -> value when known before running
	nodes  []*node        // the program, one node per graph node

	// fused is the program with Conv+BatchNormalization+Relu/Clip chains
	// merged into single nodes (fuse.go), nil when nothing was fused or
	// fusion is off; elided marks the values it no longer computes.
	fused  []*node
	elided map[int]bool

	inputs  []ValueInfo
	inSlots []int
	outputs []ValueInfo
	outSlot []int

	group     []int  // value slot -> storage group (values sharing one buffer)
	pinned    []bool // storage group -> never recycled during a run
	external  []bool // storage group -> holds caller or constant memory
	groupSize []int  // storage group -> number of member slots

	mu   sync.Mutex
	pool *bufPool // buffers left over by the last run, for the next one
}

// ValueInfo describes a graph input or output.
type ValueInfo struct {
	Name  string
	DType DType
	// Shape is the declared shape; -1 marks a dynamic dimension (e.g. the
	// batch). Nil when the model declares no shape.
	Shape []int
}

type node struct {
	index int
	op    string
	name  string // for messages: the node's name, or "#index"
	in    []int  // value slots, -1 for an absent optional input
	out   []int  // value slots, -1 for an absent optional output
	run   kernel
	bn    *bnInfo     // BatchNormalization nodes only
	conv  *convOp     // Conv nodes only
	act   *activation // Clip nodes with bounds known at build time

	maxPool2 bool // a MaxPool that a Conv may absorb (fuse.go)

	release []int  // value slots whose storage is dead after this node
	dying   []bool // per input: its storage is dead after this node and no other input shares it
}

// kernel computes a node's outputs from its inputs (nil for absent optional
// inputs). It returns one tensor per declared output; outputs that the graph
// does not use may be nil.
type kernel func(c *runCtx, in []*Tensor) ([]*Tensor, error)

// Option configures NewSession.
type Option func(*sessionConfig)

type sessionConfig struct {
	threads int
	noFuse  bool
}

// Fusion turns operator fusion on (the default) or off. With fusion on, a
// Conv with constant weights followed by an inference-mode
// BatchNormalization and/or a Relu or Clip, where nothing else reads the
// intermediate values, runs as one node: the BatchNormalization folded into
// the weights and bias (on the first run that uses the fused graph), the
// activation applied to each image's output while it is in cache. Results then differ from the
// unfused graph by rounding only (the folded weights round differently).
// Runs that observe intermediate values (OnValue, BatchNormStatistics, or
// Capture or Observe of a fused-away value) always execute the unfused
// graph, node by node. Turn fusion off to debug or to reproduce per-node rounding.
func Fusion(on bool) Option {
	return func(c *sessionConfig) { c.noFuse = !on }
}

// Threads bounds the goroutines the interpreter's own kernels use in a Run
// (elementwise, pooling, normalisation, im2col and the split of a batch over
// images); n <= 0 means runtime.GOMAXPROCS(0), the default. Large matrix
// products run in package simd, which sizes its worker pool from GOMAXPROCS.
// Results do not depend on either.
func Threads(n int) Option {
	return func(c *sessionConfig) { c.threads = n }
}

// aliasing ops return their first input's data under a new shape: their first
// output shares storage with their first input.
var aliasing = map[string]bool{
	"Identity": true, "Reshape": true, "Flatten": true, "Squeeze": true, "Unsqueeze": true, "Dropout": true,
}

// notFolded are ops never evaluated at session creation even when all their
// inputs are constant.
var notFolded = map[string]bool{"BatchNormalization": true}

// NewSession compiles m's main graph. It fails with an *UnsupportedError when
// the graph uses an operator, attribute value or element type the interpreter
// does not implement, and with another error when the graph is malformed.
//
// Initializers that are also listed as graph inputs are treated as constants
// (they cannot be overridden in Run). Nodes whose inputs are all constant are
// evaluated once here; OnValue does not see their outputs (Capture does).
func NewSession(m *onnx.Model, opts ...Option) (*Session, error) {
	cfg := sessionConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.threads <= 0 {
		cfg.threads = runtime.GOMAXPROCS(0)
	}
	if m == nil || m.Proto == nil || m.Proto.GetGraph() == nil {
		return nil, errors.New("infer: model has no graph")
	}
	s := &Session{model: m, threads: cfg.threads, slotOf: map[string]int{}, opset: -1}
	for _, o := range m.Proto.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			s.opset = int(o.GetVersion())
		}
	}
	if s.opset < 0 {
		return nil, errors.New("infer: model imports no ai.onnx opset")
	}
	g := m.Proto.GetGraph()

	slot := func(name string) int {
		if i, ok := s.slotOf[name]; ok {
			return i
		}
		i := len(s.names)
		s.names = append(s.names, name)
		s.slotOf[name] = i
		s.dtypes = append(s.dtypes, 0)
		s.consts = append(s.consts, nil)
		return i
	}

	// Where each value comes from.
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = t
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, &UnsupportedError{What: "sparse initializers"}
	}
	producer := map[string]int{}
	for i, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			if o == "" {
				continue
			}
			if _, dup := producer[o]; dup {
				return nil, fmt.Errorf("infer: value %q is produced by two nodes", o)
			}
			producer[o] = i
		}
	}
	widen := castToFloatOnly(g)
	// Graph inputs proper (not initializers).
	for _, vi := range g.GetInput() {
		name := vi.GetName()
		if _, isInit := inits[name]; isInit {
			continue
		}
		info, err := valueInfo(vi)
		if err != nil {
			return nil, err
		}
		i := slot(name)
		s.dtypes[i] = info.DType
		s.inputs = append(s.inputs, info)
		s.inSlots = append(s.inSlots, i)
	}
	isInput := map[string]bool{}
	for _, vi := range s.inputs {
		isInput[vi.Name] = true
	}
	// resolve returns the slot of a referenced value, loading an initializer
	// the first time it is referenced.
	resolve := func(name string) (int, error) {
		if i, ok := s.slotOf[name]; ok {
			return i, nil
		}
		if _, ok := producer[name]; ok {
			return slot(name), nil
		}
		if tp, ok := inits[name]; ok {
			t, err := TensorFromProto(m, tp)
			if widen[name] {
				t, err = widenedTensor(m, tp)
			}
			if err != nil {
				var u *UnsupportedError
				if errors.As(err, &u) {
					return 0, &UnsupportedError{What: fmt.Sprintf("initializer %q of type %v", name, onnx.DataType(tp))}
				}
				return 0, fmt.Errorf("infer: initializer %q: %v", name, err)
			}
			i := slot(name)
			s.consts[i] = t
			s.dtypes[i] = t.DType
			return i, nil
		}
		return 0, fmt.Errorf("infer: value %q is neither a graph input, an initializer nor a node output", name)
	}

	order, err := topoOrder(g.GetNode(), producer)
	if err != nil {
		return nil, err
	}
	for _, idx := range order {
		pn := g.GetNode()[idx]
		nd := &node{index: idx, op: pn.GetOpType(), name: pn.GetName()}
		if nd.name == "" {
			nd.name = fmt.Sprintf("#%d", idx)
		}
		if d := pn.GetDomain(); d != "" && d != "ai.onnx" {
			return nil, &UnsupportedError{Op: d + "." + nd.op, Node: nd.name, What: "operator domain " + d}
		}
		build, ok := registry[nd.op]
		if !ok {
			return nil, &UnsupportedError{Op: nd.op, Node: nd.name, What: "operator"}
		}
		b := &nodeCtx{proto: pn, op: nd.op, name: nd.name, opset: s.opset, nOut: len(pn.GetOutput())}
		b.widen = len(pn.GetOutput()) == 1 && widen[pn.GetOutput()[0]]
		for _, in := range pn.GetInput() {
			if in == "" {
				nd.in = append(nd.in, -1)
				b.in = append(b.in, 0)
				b.consts = append(b.consts, nil)
				continue
			}
			i, err := resolve(in)
			if err != nil {
				return nil, err
			}
			nd.in = append(nd.in, i)
			b.in = append(b.in, s.dtypes[i])
			b.consts = append(b.consts, s.consts[i])
		}
		b.out = make([]DType, b.nOut)
		run, err := build(b)
		if err != nil {
			return nil, b.wrap(err)
		}
		nd.run = run
		nd.bn = b.bn
		nd.conv = b.conv
		nd.act = b.act
		nd.maxPool2 = b.maxPool2
		for j, o := range pn.GetOutput() {
			if o == "" {
				nd.out = append(nd.out, -1)
				continue
			}
			if _, taken := s.slotOf[o]; taken && (isInput[o] || s.consts[s.slotOf[o]] != nil) {
				return nil, fmt.Errorf("infer: node %s output %q redefines a graph input or initializer", nd.name, o)
			}
			i := slot(o)
			s.dtypes[i] = b.out[j]
			nd.out = append(nd.out, i)
		}
		if err := s.maybeFold(nd, b); err != nil {
			return nil, err
		}
	}
	for _, vi := range g.GetOutput() {
		i, err := resolve(vi.GetName())
		if err != nil {
			return nil, err
		}
		info := ValueInfo{Name: vi.GetName(), DType: s.dtypes[i]}
		if declared, err := valueInfo(vi); err == nil {
			info.Shape = declared.Shape
		}
		s.outputs = append(s.outputs, info)
		s.outSlot = append(s.outSlot, i)
	}
	s.planStorage()
	if !cfg.noFuse {
		s.fuse()
		if s.fused != nil {
			s.planLiveness(s.fused)
		}
	}
	return s, nil
}

// maybeFold evaluates nd now if all its inputs are constant, recording its
// outputs as constants; otherwise it appends nd to the session's program.
func (s *Session) maybeFold(nd *node, b *nodeCtx) error {
	foldable := !notFolded[nd.op]
	for _, i := range nd.in {
		if i >= 0 && s.consts[i] == nil {
			foldable = false
		}
	}
	if !foldable {
		s.nodes = append(s.nodes, nd)
		return nil
	}
	in := make([]*Tensor, len(nd.in))
	for j, i := range nd.in {
		if i >= 0 {
			in[j] = s.consts[i]
		}
	}
	out, err := safeRun(nd, &runCtx{threads: 1}, in)
	if err != nil {
		return b.wrap(err)
	}
	for j, i := range nd.out {
		if i < 0 {
			continue
		}
		if j >= len(out) || out[j] == nil {
			return b.wrap(fmt.Errorf("output %d not computed", j))
		}
		s.consts[i] = out[j]
	}
	return nil
}

// planStorage groups values that share a buffer (through aliasing ops) and
// finds, for each group, the node after which its buffer can be recycled.
func (s *Session) planStorage() {
	n := len(s.names)
	s.group = make([]int, n)
	for i := range s.group {
		s.group[i] = i
	}
	find := func(i int) int {
		for s.group[i] != i {
			s.group[i] = s.group[s.group[i]]
			i = s.group[i]
		}
		return i
	}
	for _, nd := range s.nodes {
		if aliasing[nd.op] && len(nd.in) > 0 && nd.in[0] >= 0 && len(nd.out) > 0 && nd.out[0] >= 0 {
			a, b := find(nd.in[0]), find(nd.out[0])
			if a != b {
				s.group[b] = a
			}
		}
	}
	for i := range s.group {
		s.group[i] = find(i)
	}
	s.pinned = make([]bool, n)
	s.external = make([]bool, n)
	s.groupSize = make([]int, n)
	for i := range s.group {
		s.groupSize[s.group[i]]++
		if s.consts[i] != nil {
			s.pinned[s.group[i]] = true
			s.external[s.group[i]] = true
		}
	}
	for _, i := range s.inSlots {
		s.pinned[s.group[i]] = true
		s.external[s.group[i]] = true
	}
	for _, i := range s.outSlot {
		s.pinned[s.group[i]] = true
	}
	s.planLiveness(s.nodes)
}

// planLiveness sets, for the program nodes, each node's release list and
// the inputs it may overwrite.
func (s *Session) planLiveness(nodes []*node) {
	n := len(s.names)
	last := make([]int, n) // group -> last node (program index) touching it
	for i := range last {
		last[i] = -1
	}
	rep := make([]int, n) // group -> a member slot alive at that node
	for k, nd := range nodes {
		for _, i := range nd.out {
			if i >= 0 {
				last[s.group[i]], rep[s.group[i]] = k, i
			}
		}
		for _, i := range nd.in {
			if i >= 0 {
				last[s.group[i]], rep[s.group[i]] = k, i
			}
		}
	}
	for g, k := range last {
		if k >= 0 && s.group[g] == g && !s.pinned[g] {
			nodes[k].release = append(nodes[k].release, rep[g])
		}
	}
	// Inputs a kernel may overwrite: their group ends at this node and is
	// read through this one input only.
	for k, nd := range nodes {
		uses := map[int]int{}
		for _, i := range nd.in {
			if i >= 0 {
				uses[s.group[i]]++
			}
		}
		for j, i := range nd.in {
			if i < 0 {
				continue
			}
			g := s.group[i]
			if last[g] == k && !s.pinned[g] && uses[g] == 1 {
				if nd.dying == nil {
					nd.dying = make([]bool, len(nd.in))
				}
				nd.dying[j] = true
			}
		}
	}
}

// topoOrder returns node indices in an order where every node follows the
// producers of its inputs, keeping the file order where it allows.
func topoOrder(nodes []*onnxpb.NodeProto, producer map[string]int) ([]int, error) {
	indeg := make([]int, len(nodes))
	users := make([][]int, len(nodes))
	for i, n := range nodes {
		seen := map[int]bool{}
		for _, in := range n.GetInput() {
			if p, ok := producer[in]; ok && in != "" && !seen[p] {
				seen[p] = true
				indeg[i]++
				users[p] = append(users[p], i)
			}
		}
	}
	var ready []int
	for i := range nodes {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	order := make([]int, 0, len(nodes))
	for len(ready) > 0 {
		sort.Ints(ready)
		i := ready[0]
		ready = ready[1:]
		order = append(order, i)
		for _, u := range users[i] {
			if indeg[u]--; indeg[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(order) != len(nodes) {
		return nil, errors.New("infer: graph has a cycle")
	}
	return order, nil
}

func valueInfo(vi *onnxpb.ValueInfoProto) (ValueInfo, error) {
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return ValueInfo{}, &UnsupportedError{What: fmt.Sprintf("graph value %q: not a tensor type", vi.GetName())}
	}
	elem := onnxpb.TensorProto_DataType(tt.GetElemType())
	dt, ok := dtypeOf(elem)
	if !ok {
		return ValueInfo{}, &UnsupportedError{What: fmt.Sprintf("graph value %q of type %v", vi.GetName(), elem)}
	}
	info := ValueInfo{Name: vi.GetName(), DType: dt}
	if sh := tt.GetShape(); sh != nil {
		info.Shape = make([]int, len(sh.GetDim()))
		for i, d := range sh.GetDim() {
			info.Shape[i] = -1
			if v, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && v.DimValue >= 0 {
				info.Shape[i] = int(v.DimValue)
			}
		}
	}
	return info, nil
}

// Inputs describes the tensors Run needs.
func (s *Session) Inputs() []ValueInfo { return slices.Clone(s.inputs) }

// Outputs describes the tensors Run returns.
func (s *Session) Outputs() []ValueInfo { return slices.Clone(s.outputs) }

// RunOption configures one Run.
type RunOption func(*runConfig)

type runConfig struct {
	capture []string
	onValue []func(name string, t *Tensor)
	observe []observer
	bnStats func(BatchNormStats)
}

type observer struct {
	names []string
	fn    func(name string, t *Tensor) error
}

// Capture adds the named intermediate tensors (any value of the graph: node
// outputs, inputs or initializers) to the map Run returns. Captured node
// outputs are not copied: they are the buffers the run computed, kept from
// being recycled or overwritten (values that share the memory of a graph
// input or a constant are returned as copies).
func Capture(names ...string) RunOption {
	return func(c *runConfig) { c.capture = append(c.capture, names...) }
}

// OnValue calls fn with every node output as soon as it is computed, in
// execution order, on the goroutine that called Run. t is the interpreter's
// own buffer, valid only until fn returns (it may be recycled afterwards):
// fn must not modify it, and must Clone it (or copy what it needs) to keep
// it. Values computed at session creation (from constants only) are not
// reported.
func OnValue(fn func(name string, t *Tensor)) RunOption {
	return func(c *runConfig) { c.onValue = append(c.onValue, fn) }
}

// Observe calls fn with each of the named values (node outputs) as soon as
// it is computed, on the goroutine that called Run, in execution order:
// statistics over a data set can then be gathered batch by batch while the
// interpreter goes on recycling every intermediate value it no longer
// needs, instead of keeping them all as Capture does. t is the run's own
// buffer, valid only until fn returns. fn may change t's elements (not its
// shape): the nodes that run afterwards read the changed values (a value
// whose storage is also another value's, such as a graph input, is copied
// before fn sees it). An error from fn stops the run and Run returns it.
// Unlike OnValue, the run keeps the fused program (see Fusion) unless a
// named value is computed only unfused; names that are not node outputs
// are an error.
func Observe(names []string, fn func(name string, t *Tensor) error) RunOption {
	return func(c *runConfig) { c.observe = append(c.observe, observer{names: names, fn: fn}) }
}

// Run executes the graph on inputs (keyed by graph input name) and returns
// the graph outputs and any captured values by name. Inputs are only read.
func (s *Session) Run(inputs map[string]*Tensor, opts ...RunOption) (map[string]*Tensor, error) {
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}
	vals := make([]*Tensor, len(s.names))
	copy(vals, s.consts)
	for k, info := range s.inputs {
		t, ok := inputs[info.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("infer: missing input %q", info.Name)
		}
		if err := checkInput(info, t); err != nil {
			return nil, err
		}
		vals[s.inSlots[k]] = t
	}
	for name := range inputs {
		if !slices.ContainsFunc(s.inputs, func(v ValueInfo) bool { return v.Name == name }) {
			return nil, fmt.Errorf("infer: %q is not an input of the graph", name)
		}
	}
	var observed map[int][]func(string, *Tensor) error
	for _, o := range cfg.observe {
		for _, name := range o.names {
			i, ok := s.slotOf[name]
			if !ok || s.consts[i] != nil || slices.Contains(s.inSlots, i) {
				return nil, fmt.Errorf("infer: cannot observe %q: not a value computed by a node", name)
			}
			if observed == nil {
				observed = map[int][]func(string, *Tensor) error{}
			}
			observed[i] = append(observed[i], o.fn)
		}
	}
	prog := s.nodes
	if s.fused != nil && len(cfg.onValue) == 0 && cfg.bnStats == nil {
		prog = s.fused
		for _, name := range cfg.capture {
			if i, ok := s.slotOf[name]; ok && s.elided[i] {
				prog = s.nodes // the value is computed only unfused
			}
		}
		for i := range observed {
			if s.elided[i] {
				prog = s.nodes
			}
		}
	}
	pinned := s.pinned
	var capSlots []int
	if len(cfg.capture) > 0 {
		pinned = slices.Clone(s.pinned)
		for _, name := range cfg.capture {
			i, ok := s.slotOf[name]
			if !ok {
				return nil, fmt.Errorf("infer: cannot capture %q: no such value in the graph", name)
			}
			pinned[s.group[i]] = true
			capSlots = append(capSlots, i)
		}
	}

	s.mu.Lock()
	pool := s.pool
	s.pool = nil
	s.mu.Unlock()
	if pool == nil {
		pool = newBufPool()
	}
	pool.startRun()
	c := &runCtx{threads: s.threads, pool: pool, bnStats: cfg.bnStats}
	in := make([]*Tensor, 0, 8)
	for _, nd := range prog {
		in = in[:0]
		for _, i := range nd.in {
			if i < 0 {
				in = append(in, nil)
			} else {
				in = append(in, vals[i])
			}
		}
		c.node = nd
		c.dying = c.dying[:0]
		if nd.dying != nil {
			for j, d := range nd.dying {
				c.dying = append(c.dying, d && !pinned[s.group[nd.in[j]]])
			}
		}
		out, err := safeRun(nd, c, in)
		if err != nil {
			return nil, fmt.Errorf("infer: %s node %q: %v", nd.op, nd.name, err)
		}
		for j, i := range nd.out {
			if i < 0 {
				continue
			}
			if j >= len(out) || out[j] == nil {
				return nil, fmt.Errorf("infer: %s node %q: output %d not computed", nd.op, nd.name, j)
			}
			vals[i] = out[j]
			for _, fn := range cfg.onValue {
				fn(s.names[i], out[j])
			}
			if fns := observed[i]; fns != nil {
				if s.external[s.group[i]] || sharesLiveInput(out[j], in, c.dying) {
					// An observer may write: give it storage of its own.
					vals[i] = out[j].Clone()
				}
				for _, fn := range fns {
					if err := fn(s.names[i], vals[i]); err != nil {
						return nil, fmt.Errorf("infer: observing %s: %w", s.names[i], err)
					}
				}
			}
		}
		for _, i := range nd.release {
			if !pinned[s.group[i]] && vals[i] != nil && vals[i].DType == Float32 && !reusedAsOutput(vals[i].F, out) {
				pool.put(vals[i].F)
			}
		}
	}
	pool.trim()
	s.mu.Lock()
	if s.pool == nil || s.pool.size < pool.size {
		s.pool = pool
	}
	s.mu.Unlock()

	res := make(map[string]*Tensor, len(s.outSlot)+len(capSlots))
	for k, i := range s.outSlot {
		t := vals[i]
		if s.external[s.group[i]] {
			t = t.Clone() // never hand out the caller's input or a constant as an output
		}
		res[s.outputs[k].Name] = t
	}
	for _, i := range capSlots {
		t := vals[i]
		if s.external[s.group[i]] {
			t = t.Clone()
		}
		res[s.names[i]] = t
	}
	return res, nil
}

func checkInput(info ValueInfo, t *Tensor) error {
	if err := t.check(); err != nil {
		return fmt.Errorf("infer: input %q: %v", info.Name, err)
	}
	if t.DType != info.DType {
		return fmt.Errorf("infer: input %q: got %v, the graph declares %v", info.Name, t.DType, info.DType)
	}
	if info.Shape != nil {
		ok := len(t.Shape) == len(info.Shape)
		for i := 0; ok && i < len(t.Shape); i++ {
			ok = info.Shape[i] < 0 || info.Shape[i] == t.Shape[i]
		}
		if !ok {
			return fmt.Errorf("infer: input %q: shape %v does not match the declared %v", info.Name, t.Shape, info.Shape)
		}
	}
	return nil
}

// safeRun runs a node's kernel, turning a panic (a kernel meeting shapes it
// did not validate) into an error rather than crashing the caller.
func safeRun(nd *node, c *runCtx, in []*Tensor) (out []*Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("internal error (inputs %s): %v", describe(in), r)
		}
	}()
	return nd.run(c, in)
}

func describe(in []*Tensor) string {
	var parts []string
	for _, t := range in {
		if t == nil {
			parts = append(parts, "-")
		} else {
			parts = append(parts, t.String())
		}
	}
	return strings.Join(parts, ", ")
}

// sharesLiveInput reports whether output t is stored in the buffer of an
// input that other nodes may still read (an aliasing op, or a kernel that
// returned its input as is).
func sharesLiveInput(t *Tensor, in []*Tensor, dying []bool) bool {
	if t.DType != Float32 || len(t.F) == 0 {
		return true // not float32 data: copy, to be safe
	}
	for j, x := range in {
		if x != nil && x.DType == Float32 && overlap(x.F, t.F) && !(j < len(dying) && dying[j]) {
			return true
		}
	}
	return false
}

// overlap reports whether a and b share memory (a kernel may return a view
// into its input).
func overlap(a, b []float32) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b))*4 && pb < pa+uintptr(len(a))*4
}

// reusedAsOutput reports whether buf is the storage of one of a node's
// outputs (a kernel computed in place).
func reusedAsOutput(buf []float32, out []*Tensor) bool {
	if len(buf) == 0 {
		return false
	}
	for _, o := range out {
		if o != nil && o.DType == Float32 && len(o.F) > 0 && &o.F[0] == &buf[0] {
			return true
		}
	}
	return false
}

// runCtx is what kernels see of the run they belong to.
type runCtx struct {
	threads int
	pool    *bufPool // nil while folding constants
	node    *node
	dying   []bool // per input of the current node: may be overwritten
	bnStats func(BatchNormStats)
}

// outFor returns a buffer for an output of the same size as float32 input
// j: the input's own buffer when it is not needed after this node (the
// kernel then computes in place, reading each element before writing it),
// a new one otherwise.
func (c *runCtx) outFor(in []*Tensor, j int) []float32 {
	if j < len(c.dying) && c.dying[j] && in[j].DType == Float32 {
		return in[j].F
	}
	return c.floats(len(in[j].F))
}

// floats returns a float32 slice of length n with undefined contents.
func (c *runCtx) floats(n int) []float32 {
	if c.pool != nil {
		if b := c.pool.get(n); b != nil {
			return b
		}
	}
	return make([]float32, n)
}

// recycle hands a scratch buffer back for reuse within the run.
func (c *runCtx) recycle(b []float32) {
	if c.pool != nil {
		c.pool.put(b)
	}
}

// newF returns a float32 tensor of the given shape with undefined contents.
func (c *runCtx) newF(shape []int) *Tensor {
	return &Tensor{Shape: shape, DType: Float32, F: c.floats(numel(shape))}
}

// bufPool keeps float32 buffers by length for reuse. Between runs it keeps
// only the lengths the last run used, so memory stays bounded by one run's
// working set when batch sizes vary.
type bufPool struct {
	free map[int][][]float32
	used map[int]bool // lengths asked for or returned during the current run
	size int          // total float32s held
}

// minPooled is the smallest buffer worth recycling.
const minPooled = 256

func newBufPool() *bufPool {
	return &bufPool{free: map[int][][]float32{}, used: map[int]bool{}}
}

func (p *bufPool) startRun() { clear(p.used) }

// trim drops the buffers of lengths the current run did not use.
func (p *bufPool) trim() {
	for n, l := range p.free {
		if !p.used[n] {
			p.size -= n * len(l)
			delete(p.free, n)
		}
	}
}

func (p *bufPool) get(n int) []float32 {
	if n < minPooled {
		return nil
	}
	p.used[n] = true
	l := p.free[n]
	if len(l) == 0 {
		return nil
	}
	b := l[len(l)-1]
	p.free[n] = l[:len(l)-1]
	p.size -= n
	return b
}

func (p *bufPool) put(b []float32) {
	if len(b) < minPooled {
		return
	}
	p.used[len(b)] = true
	p.free[len(b)] = append(p.free[len(b)], b)
	p.size += len(b)
}
