// Package soup builds model soups from recipe files: weighted averages
// (aligned with Git Re-Basin or not), greedy soups ranked on held-out data,
// and the task-vector methods mergekit made standard (task arithmetic,
// TIES, DARE, SLERP, Model Stock), on ONNX models.
//
// Methods that need no alignment stream the models tensor by tensor (see
// onnx.OpenLazy), so memory stays a few times the largest tensor whatever
// the number and size of the models. The output records the tool version,
// the recipe and the sha256 of every input in its metadata_props, and the
// same recipe on the same inputs rebuilds the same bytes.
package soup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/merge"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// Metadata keys of the provenance the output records.
const (
	MetaVersion = "onnx_rebasin.version"
	MetaRecipe  = "onnx_rebasin.recipe"
	MetaInputs  = "onnx_rebasin.inputs"
)

// Options are the settings of a build that are not part of the recipe.
type Options struct {
	Version string    // tool version recorded in the output
	Log     io.Writer // progress lines, or nil
	Batch   int       // samples per forward pass for eval, alignment and BN (default 256)
	// Context, if not nil, stops the build when cancelled; the output is
	// then not written and no temporary file is left.
	Context context.Context
}

// ctx is the build's context: opts.Context, or one never cancelled.
func (opts Options) ctx() context.Context {
	if opts.Context == nil {
		return context.Background()
	}
	return opts.Context
}

// Result reports a build.
type Result struct {
	// Streamed says the models were read tensor by tensor (no alignment,
	// greedy, reset_bn or repair).
	Streamed bool `json:"streamed"`
	// Inputs maps each input file (relative to the recipe) to its sha256.
	Inputs map[string]string `json:"inputs"`
	// Greedy is the greedy soup's table, in the order tried.
	Greedy []GreedyStep `json:"greedy,omitempty"`
}

// GreedyStep is one row of the greedy soup's table.
type GreedyStep struct {
	Model        string  `json:"model"`
	Accuracy     float64 `json:"accuracy"`      // the ingredient alone
	SoupAccuracy float64 `json:"soup_accuracy"` // the soup with it added (kept if not lower than before)
	Kept         bool    `json:"kept"`
}

// streamExternalBytes is the weight size from which a streamed output
// keeps its tensors in an external data file (out.<hash>.data, see
// onnx.Model.SaveStreamed), so that the
// output is never held in memory; outputs of models with external data
// always do.
const streamExternalBytes = 256 << 20

// plan is a recipe resolved: paths, per-model parameters, the method.
type plan struct {
	r         *Recipe
	base      string   // path of base_model, or ""
	models    []string // paths of the models combined (without the base for task-vector methods)
	labels    []string // the same, as written in the recipe
	weights   []float64
	densities []float64
}

func newPlan(r *Recipe) *plan {
	p := &plan{r: r}
	if r.BaseModel != "" {
		p.base = r.Path(r.BaseModel)
	}
	ings := r.Models
	switch r.MergeMethod {
	case "linear", "greedy":
	default:
		ings = r.fineTunes()
	}
	for _, m := range ings {
		p.models = append(p.models, r.Path(m.Model))
		p.labels = append(p.labels, m.Model)
		w, d := 1.0, 1.0
		if r.Parameters.Weight != nil {
			w = *r.Parameters.Weight
		}
		if m.Parameters.Weight != nil {
			w = *m.Parameters.Weight
		}
		if r.Parameters.Density != nil {
			d = *r.Parameters.Density
		}
		if m.Parameters.Density != nil {
			d = *m.Parameters.Density
		}
		p.weights = append(p.weights, w)
		p.densities = append(p.densities, d)
	}
	return p
}

// inMemory says whether the build loads whole models: alignment, the
// greedy search, BN reset and REPAIR work on models in memory.
func (p *plan) inMemory() bool {
	r := p.r
	return r.Align != nil || r.MergeMethod == "greedy" || r.ResetBN != "" || r.Repair != ""
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func floatOr(f *float64, def float64) float64 {
	if f == nil {
		return def
	}
	return *f
}

// stockRows is how many rows model_stock computes its ratio for: the
// first axis with filter_wise, else one for the tensor.
func (p *plan) stockRows(dims []int64) int {
	if boolOr(p.r.Parameters.FilterWise, false) && len(dims) >= 2 && dims[0] > 0 {
		return int(dims[0])
	}
	return 1
}

// combine computes one float tensor of the output into out.
func (p *plan) combine(src *readerSource, dims []int64, out []float64, s *scratch) error {
	r := p.r
	ps := r.Parameters
	gta := gtaOptions{weights: p.weights, densities: p.densities, lambda: floatOr(ps.Lambda, 1), seed: r.Seed}
	switch r.MergeMethod {
	case "linear", "greedy":
		return linearInto(out, src, p.weights, boolOr(ps.Normalize, true), s)
	case "task_arithmetic":
		gta.normalize = boolOr(ps.Normalize, false)
	case "ties":
		gta.sparsify, gta.consensus, gta.normalize = "magnitude", true, boolOr(ps.Normalize, true)
	case "dare_linear":
		gta.sparsify, gta.normalize = "random", boolOr(ps.Normalize, false)
	case "dare_ties":
		gta.sparsify, gta.consensus, gta.normalize = "random", true, boolOr(ps.Normalize, false)
	case "slerp":
		a, b := s.get(0, len(out)), s.get(1, len(out))
		if err := src.readBase(a); err != nil {
			return err
		}
		if err := src.readModel(0, b); err != nil {
			return err
		}
		slerpInto(out, a, b, *ps.T)
		return nil
	case "model_stock":
		return modelStockInto(out, src, p.stockRows(dims), s)
	default:
		return fmt.Errorf("merge_method %q is not implemented", r.MergeMethod)
	}
	return gtaInto(out, src, gta, s)
}

// Build builds the soup r describes and writes it to out (and, for large
// or external-data models, its data file out.<hash>.data, committed with
// it as onnx.Model.Save commits). Nothing is written on failure.
func Build(r *Recipe, out string, opts Options) (*Result, error) {
	p := newPlan(r)
	if r.MergeMethod == "linear" && boolOr(r.Parameters.Normalize, true) {
		sum := 0.0
		for _, w := range p.weights {
			sum += w
		}
		if sum == 0 {
			return nil, errors.New("linear: the weights sum to zero (normalize divides by their sum)")
		}
	}
	var inputs []string
	if p.base != "" {
		inputs = append(inputs, p.base)
	}
	for _, m := range p.models {
		if !slices.Contains(inputs, m) {
			inputs = append(inputs, m)
		}
	}
	for _, m := range inputs {
		fi, err := os.Lstat(m)
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file (symbolic links are refused)", m)
		}
	}
	hashes, files, err := hashInputs(r, inputs)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if sameFile(f, out) {
			return nil, fmt.Errorf("output %s would overwrite the input %s", out, f)
		}
	}
	res := &Result{Inputs: hashes, Streamed: !p.inMemory()}
	meta := provenance(r, hashes, opts.Version)
	if p.inMemory() {
		return res, p.buildInMemory(out, meta, opts, res)
	}
	return res, p.buildStreamed(out, meta, opts)
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// hashInputs returns the sha256 of every file the build reads, keyed by its
// path relative to the recipe's folder, and the files' paths.
func hashInputs(r *Recipe, models []string) (map[string]string, []string, error) {
	var files []string
	for _, m := range models {
		l, err := onnx.OpenLazy(m)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, l.Files...)
		l.Close()
	}
	for _, d := range r.dataFiles() {
		files = append(files, r.Path(d))
	}
	out := map[string]string{}
	for _, f := range files {
		h, err := hashFile(f)
		if err != nil {
			return nil, nil, err
		}
		key := f
		if rel, err := filepath.Rel(r.dir, f); err == nil {
			key = filepath.ToSlash(rel)
		}
		out[key] = h
	}
	return out, files, nil
}

// dataFiles lists the data files the recipe names.
func (r *Recipe) dataFiles() []string {
	var d []string
	if r.Align != nil && r.Align.Data != "" {
		d = append(d, r.Align.Data)
	}
	if r.Eval != nil {
		d = append(d, r.Eval.Data, r.Eval.Labels)
	}
	if r.ResetBN != "" {
		d = append(d, r.ResetBN)
	}
	if r.Repair != "" {
		d = append(d, r.Repair)
	}
	return d
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// provenance returns the metadata_props entries the output records.
func provenance(r *Recipe, hashes map[string]string, version string) []*onnxpb.StringStringEntryProto {
	in, _ := json.Marshal(hashes) // sorted keys
	if version == "" {
		version = "devel"
	}
	return []*onnxpb.StringStringEntryProto{
		{Key: proto.String(MetaVersion), Value: proto.String(version)},
		{Key: proto.String(MetaRecipe), Value: proto.String(r.Canonical())},
		{Key: proto.String(MetaInputs), Value: proto.String(string(in))},
	}
}

// setProvenance replaces m's onnx_rebasin.* metadata with meta.
func setProvenance(m *onnxpb.ModelProto, meta []*onnxpb.StringStringEntryProto) {
	kept := m.MetadataProps[:0]
	for _, e := range m.MetadataProps {
		if !strings.HasPrefix(e.GetKey(), "onnx_rebasin.") {
			kept = append(kept, e)
		}
	}
	m.MetadataProps = append(kept, meta...)
}

// Provenance returns the onnx_rebasin.* metadata of a model (empty if it
// was not built by Build).
func Provenance(m *onnx.Model) map[string]string {
	out := map[string]string{}
	for _, e := range m.Proto.GetMetadataProps() {
		if strings.HasPrefix(e.GetKey(), "onnx_rebasin.") {
			out[e.GetKey()] = e.GetValue()
		}
	}
	return out
}

// checkSameWeights checks that every model has the reference's weights,
// by name, with the same types and shapes, and no others.
func checkSameWeights(ref modelReader, others []modelReader) error {
	rw := ref.weights()
	for _, o := range others {
		ow := o.weights()
		for _, name := range sortedKeys(rw) {
			a, b := rw[name], ow[name]
			if b == nil {
				return fmt.Errorf("%s has no weight %q (of %s); models fine-tuned from one base share weight names — independently trained or exported models need align: {method: weight}", o.path(), name, ref.path())
			}
			if onnx.DataType(a) != onnx.DataType(b) || !slices.Equal(a.Dims, b.Dims) {
				return fmt.Errorf("weight %q is %v %v in %s but %v %v in %s", name, onnx.DataType(a), a.Dims, ref.path(), onnx.DataType(b), b.Dims, o.path())
			}
		}
		for _, name := range sortedKeys(ow) {
			if rw[name] == nil {
				return fmt.Errorf("%s has a weight %q that %s has not", o.path(), name, ref.path())
			}
		}
	}
	return nil
}

// tensorJob is one weight of the output.
type tensorJob struct {
	name     string
	ref      *onnxpb.TensorProto // in the reference model
	out      *onnxpb.TensorProto // in the output
	external bool                // written to the data file
	stripped bool                // its bytes are not in the output proto: set raw_data
	// stored is the element type the output tensor is written in: the
	// reference's, or the recipe's dtype for a float weight.
	stored onnxpb.TensorProto_DataType
}

// chunkElems is how many elements of a tensor a streamed build combines at
// a time with the element-wise methods, so that their memory does not grow
// with the largest tensor. A variable so that tests can lower it.
var chunkElems = 1 << 20

// elementwise says whether the method computes each element from the same
// element of the models alone (so a tensor can be combined in chunks in one
// pass; slerp and model_stock take two, TIES needs whole tensors).
func (p *plan) elementwise() bool {
	switch p.r.MergeMethod {
	case "linear", "greedy", "task_arithmetic", "dare_linear", "dare_ties":
		return true
	}
	return false
}

// produce computes one weight of the output and passes its encoding to
// emit, in pieces: a float tensor combined by the method (in chunks of at
// most chunk elements when the method is element-wise), any other tensor
// copied from the reference after checking that every model has the same
// bytes.
func (p *plan) produce(j tensorJob, ref modelReader, readers []modelReader, src *readerSource, s *scratch, chunk int, emit func([]byte) error) error {
	dt := onnx.DataType(j.ref)
	if !onnx.IsFloat(dt) {
		want, err := ref.bytes(j.ref)
		if err != nil {
			return err
		}
		want = slices.Clone(want)
		for _, o := range readers {
			got, err := o.bytes(o.weights()[j.name])
			if err != nil {
				return err
			}
			if string(got) != string(want) {
				return fmt.Errorf("weight %q (%v) differs between %s and %s: integer and quantized weights are copied from the base, never averaged, so they must be equal", j.name, dt, ref.path(), o.path())
			}
		}
		return emit(want)
	}
	n, err := onnx.NumElements(j.ref.Dims)
	if err != nil {
		return fmt.Errorf("weight %q: %w", j.name, err)
	}
	if chunk <= 0 || chunk > n {
		chunk = n
	}
	src.tensor = j.name
	if chunk < n {
		switch {
		case p.r.MergeMethod == "slerp":
			return p.slerpChunks(j, n, src, s, chunk, emit)
		case p.r.MergeMethod == "model_stock" && p.stockRows(j.ref.Dims) == 1:
			return p.stockChunks(j, n, src, s, chunk, emit)
		case !p.elementwise():
			chunk = n
		}
	}
	for off := 0; off < n; off += chunk {
		m := min(chunk, n-off)
		out := s.get(7, m)
		src.off = off
		if err := p.combine(src, j.ref.Dims, out, s); err != nil {
			return fmt.Errorf("weight %q: %w", j.name, err)
		}
		s.enc = encodeFloats(s.enc, out, j.stored)
		if err := emit(s.enc); err != nil {
			return err
		}
	}
	return nil
}

// slerpChunks is slerp over a tensor in chunks: the norms and the dot
// product first, then the output.
func (p *plan) slerpChunks(j tensorJob, n int, src *readerSource, s *scratch, chunk int, emit func([]byte) error) error {
	var sums slerpSums
	read := func(off, m int) ([]float64, []float64, error) {
		src.off = off
		a, b := s.get(0, m), s.get(1, m)
		if err := src.readBase(a); err != nil {
			return nil, nil, err
		}
		return a, b, src.readModel(0, b)
	}
	for off := 0; off < n; off += chunk {
		a, b, err := read(off, min(chunk, n-off))
		if err != nil {
			return fmt.Errorf("weight %q: %w", j.name, err)
		}
		sums.add(a, b)
	}
	ca, cb := sums.coefficients(*p.r.Parameters.T)
	for off := 0; off < n; off += chunk {
		m := min(chunk, n-off)
		a, b, err := read(off, m)
		if err != nil {
			return fmt.Errorf("weight %q: %w", j.name, err)
		}
		out := s.get(7, m)
		for k := range out {
			out[k] = ca*a[k] + cb*b[k]
		}
		s.enc = encodeFloats(s.enc, out, j.stored)
		if err := emit(s.enc); err != nil {
			return err
		}
	}
	return nil
}

// stockChunks is model_stock (one ratio per tensor) in chunks: the sums
// over pairs of task vectors first, then the output.
func (p *plan) stockChunks(j tensorJob, n int, src *readerSource, s *scratch, chunk int, emit func([]byte) error) error {
	sums := newStockSums(src.numModels(), 1)
	for off := 0; off < n; off += chunk {
		src.off = off
		if err := addStock(sums, src, min(chunk, n-off), s); err != nil {
			return fmt.Errorf("weight %q: %w", j.name, err)
		}
	}
	t := sums.ratios()
	for off := 0; off < n; off += chunk {
		src.off = off
		out := s.get(7, min(chunk, n-off))
		if err := finishStock(out, src, t, s); err != nil {
			return fmt.Errorf("weight %q: %w", j.name, err)
		}
		s.enc = encodeFloats(s.enc, out, j.stored)
		if err := emit(s.enc); err != nil {
			return err
		}
	}
	return nil
}

// produceBytes is produce into one slice of its own.
func (p *plan) produceBytes(j tensorJob, ref modelReader, readers []modelReader, src *readerSource, s *scratch, chunk int) ([]byte, error) {
	var all []byte
	err := p.produce(j, ref, readers, src, s, chunk, func(b []byte) error {
		all = append(all, b...)
		return nil
	})
	if all == nil && err == nil {
		all = []byte{}
	}
	return all, err
}

// dtypes are the recipe's dtype values.
var dtypes = map[string]onnxpb.TensorProto_DataType{"float32": onnxpb.TensorProto_FLOAT, "float16": onnxpb.TensorProto_FLOAT16,
	"bfloat16": onnxpb.TensorProto_BFLOAT16, "float64": onnxpb.TensorProto_DOUBLE}

// storedType is the element type a weight of type dt is written in: the
// recipe's dtype for a float weight, else dt.
func (p *plan) storedType(dt onnxpb.TensorProto_DataType) onnxpb.TensorProto_DataType {
	if want, ok := dtypes[p.r.Dtype]; ok && onnx.IsFloat(dt) {
		return want
	}
	return dt
}

// restore makes t, an initializer of g whose element type the graph reads
// as dt, stored as stored instead: t is renamed "<name>_<stored>" and a
// Cast to dt, placed first in the node list, gives its old name back, so
// the graph computes in the types it did (the form fp16-stored exports
// have). Nothing is done when stored is dt.
func restore(g *onnxpb.GraphProto, t *onnxpb.TensorProto, dt, stored onnxpb.TensorProto_DataType) {
	if stored == dt {
		return
	}
	name := t.GetName()
	t.Name = proto.String(name + "_" + strings.ToLower(stored.String()))
	t.DataType = proto.Int32(int32(stored))
	g.Node = append([]*onnxpb.NodeProto{{Name: proto.String("soup_dtype_" + name), OpType: proto.String("Cast"),
		Input: []string{t.GetName()}, Output: []string{name},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(dt))}}}}, g.Node...)
}

// convertStorage stores every float initializer of m in the recipe's dtype
// (see restore), for builds that hold the output in memory.
func (p *plan) convertStorage(m *onnx.Model) error {
	g := m.Proto.GetGraph()
	for _, t := range slices.Clone(g.GetInitializer()) {
		dt := onnx.DataType(t)
		stored := p.storedType(dt)
		if stored == dt {
			continue
		}
		v, err := m.Float64s(t)
		if err != nil {
			return err
		}
		t.RawData, t.FloatData, t.DoubleData, t.Int32Data = nil, nil, nil, nil
		restore(g, t, dt, stored)
		if err := m.SetFloat64s(t, v); err != nil {
			return err
		}
	}
	return nil
}

// buildStreamed builds the soup reading every model tensor by tensor.
func (p *plan) buildStreamed(out string, meta []*onnxpb.StringStringEntryProto, opts Options) error {
	buf := new([]byte)
	var lazies []*onnx.Lazy
	defer func() {
		for _, l := range lazies {
			l.Close()
		}
	}()
	open := func(path string) (*lazyReader, error) {
		l, err := onnx.OpenLazy(path)
		if err != nil {
			return nil, err
		}
		lazies = append(lazies, l)
		return newLazyReader(l, buf), nil
	}
	src := &readerSource{}
	var all []modelReader
	if p.base != "" {
		b, err := open(p.base)
		if err != nil {
			return err
		}
		src.base = b
		all = append(all, b)
	}
	for _, m := range p.models {
		r, err := open(m)
		if err != nil {
			return err
		}
		src.models = append(src.models, r)
		all = append(all, r)
	}
	ref := all[0].(*lazyReader)
	if err := checkSameWeights(ref, all[1:]); err != nil {
		return err
	}
	outModel := &onnx.Model{Proto: proto.Clone(ref.l.Model.Proto).(*onnxpb.ModelProto), Name: out, Dir: filepath.Dir(out)}
	setProvenance(outModel.Proto, meta)
	var total int64
	external := len(ref.l.Files) > 1
	ow := outModel.Weights()
	var jobs []tensorJob
	isInit := map[*onnxpb.TensorProto]bool{}
	for _, t := range outModel.Proto.Graph.Initializer {
		isInit[t] = true
	}
	for _, name := range sortedKeys(ref.weights()) {
		t := ref.weights()[name]
		n, _ := onnx.NumElements(t.Dims)
		size := int64(n) * int64(onnx.ElemSize(onnx.DataType(t)))
		total += size
		stored := onnx.DataType(t)
		if isInit[ow[name]] {
			stored = p.storedType(stored)
			restore(outModel.Proto.Graph, ow[name], onnx.DataType(t), stored)
		}
		jobs = append(jobs, tensorJob{name: name, ref: t, out: ow[name], stripped: ref.l.OnDisk(t),
			external: isInit[ow[name]] && size >= 1024, stored: stored})
	}
	onDisk := 0
	for _, j := range jobs {
		if j.stripped {
			onDisk++
		}
	}
	if onDisk != ref.l.NumOnDisk() {
		return fmt.Errorf("%s: tensors with external data inside subgraphs are not supported", ref.path())
	}
	if total >= streamExternalBytes {
		external = true
	}
	if !external {
		for i := range jobs {
			jobs[i].external = false
		}
	}
	s := &scratch{}
	logf(opts.Log, "%s: %d weights, %d bytes, streamed from %d models\n", p.r.MergeMethod, len(jobs), total, len(all))
	// Inline tensors first (they are small, or the model is), then the
	// data file in one sequential pass.
	for _, j := range jobs {
		if j.external {
			continue
		}
		raw, err := p.produceBytes(j, ref, all[1:], src, s, chunkElems)
		if err != nil {
			return err
		}
		if j.stripped {
			// Its bytes were not loaded (large raw_data or external data):
			// now they are inline.
			j.out.RawData = raw
			j.out.DataLocation, j.out.ExternalData = nil, nil
		} else if err := outModel.SetTensorBytes(j.out, raw); err != nil {
			return err
		}
	}
	if !external {
		return outModel.SaveContext(opts.ctx(), out)
	}
	var streamed []*onnxpb.TensorProto
	var streamedJobs []tensorJob
	for _, j := range jobs {
		if j.external {
			streamed = append(streamed, j.out)
			streamedJobs = append(streamedJobs, j)
		}
	}
	return outModel.SaveStreamed(opts.ctx(), out, streamed, func(i int, w io.Writer) error {
		return p.produce(streamedJobs[i], ref, all[1:], src, s, chunkElems, func(b []byte) error {
			_, err := w.Write(b)
			return err
		})
	})
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// loaded is a model in memory with its graph analysis.
type loaded struct {
	m *onnx.Model
	a *graph.Analysis
}

func load(path string) (loaded, error) {
	m, err := onnx.Load(path)
	if err != nil {
		return loaded{}, err
	}
	a, err := graph.Analyze(m)
	if err != nil {
		return loaded{}, fmt.Errorf("%s: %w", path, err)
	}
	return loaded{m, a}, nil
}

// buildInMemory loads the models, aligns them to the reference (the base,
// or the first model) if the recipe asks, combines them, and runs the
// greedy search, BN reset and REPAIR as asked.
func (p *plan) buildInMemory(out string, meta []*onnxpb.StringStringEntryProto, opts Options, res *Result) error {
	r := p.r
	var base *loaded
	if p.base != "" {
		b, err := load(p.base)
		if err != nil {
			return err
		}
		base = &b
	}
	models := make([]loaded, len(p.models))
	for i, path := range p.models {
		var err error
		if models[i], err = load(path); err != nil {
			return err
		}
	}
	ref := base
	if ref == nil {
		ref = &models[0]
	}
	dopts := activation.Options{Batch: opts.Batch}
	perms := make([]permute.Perms, len(models))
	aligned := make([]*onnx.Model, len(models))
	for i, m := range models {
		if err := permute.SameArchitecture(ref.m, m.m, ref.a, m.a); err != nil {
			return fmt.Errorf("cannot merge %s with %s: %w", m.m.Name, ref.m.Name, err)
		}
		perms[i] = permute.Identity(ref.a)
		aligned[i] = m.m
		if r.Align == nil || m.m == ref.m {
			continue
		}
		switch r.Align.Method {
		case "", "weight":
			mr, err := match.Weights(ref.m, m.m, ref.a, match.Options{Seed: r.Seed, MaxIter: r.Align.MaxIter})
			if err != nil {
				return fmt.Errorf("aligning %s to %s: %w", m.m.Name, ref.m.Name, err)
			}
			perms[i] = mr.Perms
			logf(opts.Log, "aligned %s to %s: objective %.6g -> %.6g\n", m.m.Name, ref.m.Name, mr.ObjectiveBefore, mr.ObjectiveAfter)
		case "activation":
			ds, err := eval.Load(r.Path(r.Align.Data), "")
			if err != nil {
				return err
			}
			defer ds.Close()
			if perms[i], err = activation.Match(ref.m, m.m, ref.a, ds, dopts); err != nil {
				return fmt.Errorf("aligning %s to %s: %w", m.m.Name, ref.m.Name, err)
			}
			logf(opts.Log, "aligned %s to %s by activations\n", m.m.Name, ref.m.Name)
		}
		aligned[i] = m.m.Clone()
		if err := permute.Apply(aligned[i], ref.a, perms[i]); err != nil {
			return fmt.Errorf("%s: %w", m.m.Name, err)
		}
	}
	var merged *onnx.Model
	var err error
	switch {
	case r.MergeMethod == "greedy":
		merged, err = p.greedy(aligned, opts, res)
	case r.MergeMethod == "linear" && boolOr(r.Parameters.Normalize, true):
		// What `merge` does: the same engine.
		merged, err = merge.Average(aligned, p.weights)
	default:
		merged, err = p.combineInMemory(ref.m, base, aligned)
	}
	if err != nil {
		return err
	}
	if r.Repair != "" {
		fit, err := eval.Load(r.Path(r.Repair), "")
		if err != nil {
			return err
		}
		defer fit.Close()
		rep, err := activation.PrepareRepair(aligned[0], aligned[1], ref.a, fit, dopts)
		if err != nil {
			return err
		}
		if err := rep.Apply(merged, p.weights[1]/(p.weights[0]+p.weights[1])); err != nil {
			return err
		}
	}
	if r.ResetBN != "" {
		fit, err := eval.Load(r.Path(r.ResetBN), "")
		if err != nil {
			return err
		}
		defer fit.Close()
		if err := activation.ResetBatchNorm(merged, fit, dopts); err != nil {
			return err
		}
	}
	if err := p.convertStorage(merged); err != nil {
		return err
	}
	setProvenance(merged.Proto, meta)
	return merged.SaveContext(opts.ctx(), out)
}

// combineInMemory runs the method on models in memory, writing into a copy
// of the reference.
func (p *plan) combineInMemory(ref *onnx.Model, base *loaded, models []*onnx.Model) (*onnx.Model, error) {
	src := &readerSource{}
	var all []modelReader
	if base != nil {
		src.base = newMemReader(base.m)
		all = append(all, src.base)
	}
	for _, m := range models {
		r := newMemReader(m)
		src.models = append(src.models, r)
		all = append(all, r)
	}
	if err := checkSameWeights(all[0], all[1:]); err != nil {
		return nil, err
	}
	out := ref.Clone()
	ow := out.Weights()
	s := &scratch{}
	for _, name := range sortedKeys(all[0].weights()) {
		t := all[0].weights()[name]
		j := tensorJob{name: name, ref: t, out: ow[name], stored: onnx.DataType(t)} // the recipe's dtype comes after (convertStorage)
		raw, err := p.produceBytes(j, all[0], all[1:], src, s, 0)
		if err != nil {
			return nil, err
		}
		if err := out.SetTensorBytes(j.out, raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// greedy is the greedy soup of Wortsman et al. (2022): the ingredients
// sorted by held-out accuracy, each added to the uniform soup if the soup's
// held-out accuracy does not drop.
func (p *plan) greedy(models []*onnx.Model, opts Options, res *Result) (*onnx.Model, error) {
	r := p.r
	ds, err := eval.Load(r.Path(r.Eval.Data), r.Path(r.Eval.Labels))
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	batch := opts.Batch
	if batch <= 0 {
		batch = 256
	}
	accuracy := func(m *onnx.Model) (float64, error) {
		sess, err := infer.NewSession(m)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", m.Name, err)
		}
		er, err := eval.Run(sess, ds, batch, nil)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", m.Name, err)
		}
		return er.Accuracy, nil
	}
	accs := make([]float64, len(models))
	order := make([]int, len(models))
	for i, m := range models {
		if accs[i], err = accuracy(m); err != nil {
			return nil, err
		}
		order[i] = i
		logf(opts.Log, "greedy: %s alone: %.4f\n", p.labels[i], accs[i])
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case accs[a] > accs[b]:
			return -1
		case accs[a] < accs[b]:
			return 1
		}
		return 0
	})
	soup := []*onnx.Model{models[order[0]]}
	best := accs[order[0]]
	current := models[order[0]]
	res.Greedy = append(res.Greedy, GreedyStep{Model: p.labels[order[0]], Accuracy: best, SoupAccuracy: best, Kept: true})
	for _, i := range order[1:] {
		cand, err := merge.Average(append(slices.Clone(soup), models[i]), nil)
		if err != nil {
			return nil, err
		}
		acc, err := accuracy(cand)
		if err != nil {
			return nil, err
		}
		step := GreedyStep{Model: p.labels[i], Accuracy: accs[i], SoupAccuracy: acc}
		if acc >= best {
			soup = append(soup, models[i])
			best, current, step.Kept = acc, cand, true
		}
		res.Greedy = append(res.Greedy, step)
		logf(opts.Log, "greedy: + %s: soup %.4f, kept %v\n", p.labels[i], acc, step.Kept)
	}
	if current == models[order[0]] {
		current = current.Clone()
	}
	return current, nil
}
