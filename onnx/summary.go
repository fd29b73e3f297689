package onnx

import (
	"sort"
	"strconv"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Summary describes a model for people: what `onnx-rebasin inspect` prints.
type Summary struct {
	IRVersion       int64            `json:"ir_version"`
	Opsets          map[string]int64 `json:"opsets"` // domain ("" = ai.onnx) → version
	Producer        string           `json:"producer"`
	ProducerVersion string           `json:"producer_version,omitempty"`
	Graph           string           `json:"graph"`
	Inputs          []ValueSummary   `json:"inputs"`
	Outputs         []ValueSummary   `json:"outputs"`
	Nodes           int              `json:"nodes"`
	Ops             map[string]int   `json:"ops"` // op type (domain-qualified if not ai.onnx) → count
	Initializers    []DTypeSummary   `json:"initializers"`
	Params          int64            `json:"params"`
	Bytes           int64            `json:"bytes"`
	ExternalData    bool             `json:"external_data"`
	// Metadata is the model's metadata_props (e.g. how a soup was built).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ValueSummary is a graph input or output.
type ValueSummary struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Shape []string `json:"shape"` // a number, a symbolic name, or "?"
	// Dims is Shape typed, nil when the rank is unknown.
	Dims []Dim `json:"-"`
}

// Dim is one dimension of a ValueSummary: Value if Known, else the
// symbolic name Param, or neither when nothing is known.
type Dim struct {
	Value int64
	Param string
	Known bool
}

// DTypeSummary counts the initializers of one element type.
type DTypeSummary struct {
	DType  string `json:"dtype"`
	Count  int    `json:"count"`
	Params int64  `json:"params"`
	Bytes  int64  `json:"bytes"`
}

// Summarize describes m.
func Summarize(m *Model) Summary {
	p := m.Proto
	g := p.GetGraph()
	s := Summary{
		IRVersion:       p.GetIrVersion(),
		Opsets:          map[string]int64{},
		Producer:        p.GetProducerName(),
		ProducerVersion: p.GetProducerVersion(),
		Graph:           g.GetName(),
		Nodes:           len(g.GetNode()),
		Ops:             map[string]int{},
		ExternalData:    m.HasExternalData(),
	}
	for _, o := range p.OpsetImport {
		s.Opsets[o.GetDomain()] = o.GetVersion()
	}
	for _, e := range p.GetMetadataProps() {
		if s.Metadata == nil {
			s.Metadata = map[string]string{}
		}
		s.Metadata[e.GetKey()] = e.GetValue()
	}
	for _, n := range g.GetNode() {
		op := n.GetOpType()
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			op = d + "." + op
		}
		s.Ops[op]++
	}
	init := map[string]bool{}
	for _, t := range g.GetInitializer() {
		init[t.GetName()] = true
	}
	for _, v := range g.GetInput() {
		if !init[v.GetName()] { // IR<4 models list initializers as inputs too
			s.Inputs = append(s.Inputs, summarizeValue(v))
		}
	}
	for _, v := range g.GetOutput() {
		s.Outputs = append(s.Outputs, summarizeValue(v))
	}
	byType := map[string]*DTypeSummary{}
	for _, t := range g.GetInitializer() {
		dt := DataType(t).String()
		d := byType[dt]
		if d == nil {
			d = &DTypeSummary{DType: dt}
			byType[dt] = d
		}
		n, _ := NumElements(t.Dims)
		d.Count++
		d.Params += int64(n)
		d.Bytes += int64(n) * int64(ElemSize(DataType(t)))
		s.Params += int64(n)
		s.Bytes += int64(n) * int64(ElemSize(DataType(t)))
	}
	for _, d := range byType {
		s.Initializers = append(s.Initializers, *d)
	}
	sort.Slice(s.Initializers, func(i, j int) bool { return s.Initializers[i].DType < s.Initializers[j].DType })
	return s
}

func summarizeValue(v *onnxpb.ValueInfoProto) ValueSummary {
	vs := ValueSummary{Name: v.GetName(), Type: "?"}
	tt := v.GetType().GetTensorType()
	if tt == nil {
		return vs
	}
	vs.Type = onnxpb.TensorProto_DataType(tt.GetElemType()).String()
	if tt.GetShape() != nil {
		vs.Dims = []Dim{}
	}
	for _, d := range tt.GetShape().GetDim() {
		switch x := d.GetValue().(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimParam:
			if x.DimParam == "" {
				vs.Shape = append(vs.Shape, "?")
				vs.Dims = append(vs.Dims, Dim{})
				continue
			}
			vs.Shape = append(vs.Shape, x.DimParam)
			vs.Dims = append(vs.Dims, Dim{Param: x.DimParam})
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			vs.Shape = append(vs.Shape, strconv.FormatInt(x.DimValue, 10))
			vs.Dims = append(vs.Dims, Dim{Value: x.DimValue, Known: true})
		default:
			vs.Shape = append(vs.Shape, "?")
			vs.Dims = append(vs.Dims, Dim{})
		}
	}
	return vs
}
