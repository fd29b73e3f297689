package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strconv"

	"github.com/onnx-rebasin/onnx-rebasin/barrier"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/atomicfile"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// The JSON the commands print or write. One convention: snake_case names,
// units in the name (elapsed_s), counts as numbers. docs/json.md documents
// these types and testdata/golden/*.json pins them (golden_test.go).

// inspectJSON is what `inspect --json` prints.
type inspectJSON struct {
	Model           string           `json:"model"`
	IRVersion       int64            `json:"ir_version"`
	Opsets          map[string]int64 `json:"opsets"` // domain ("ai.onnx" for the default) → version
	Producer        string           `json:"producer"`
	ProducerVersion string           `json:"producer_version"`
	Graph           string           `json:"graph"`
	Inputs          []valueJSON      `json:"inputs"`
	Outputs         []valueJSON      `json:"outputs"`
	Nodes           int              `json:"nodes"`
	Ops             map[string]int   `json:"ops"` // op type (domain-qualified if not ai.onnx) → count
	Weights         weightsJSON      `json:"weights"`
	// Metadata is the model's metadata_props, e.g. how a soup was built.
	Metadata map[string]string `json:"metadata"`
}

// valueJSON is a graph input or output.
type valueJSON struct {
	Name  string    `json:"name"`
	DType string    `json:"dtype"` // "FLOAT", ...; "?" when not a tensor
	Shape []dimJSON `json:"shape"` // null when the rank is unknown
}

// dimJSON is one dimension: a number when static, the symbolic name (a
// string) when named, null when unknown.
type dimJSON onnx.Dim

func (d dimJSON) MarshalJSON() ([]byte, error) {
	switch {
	case d.Param != "":
		return json.Marshal(d.Param)
	case d.Known:
		return []byte(strconv.FormatInt(d.Value, 10)), nil
	}
	return []byte("null"), nil
}

// weightsJSON is the initializers of a model ("weights" in the text output).
type weightsJSON struct {
	Params       int64       `json:"params"`
	Bytes        int64       `json:"bytes"`
	ExternalData bool        `json:"external_data"`
	ByDType      []dtypeJSON `json:"by_dtype"`
}

type dtypeJSON struct {
	DType   string `json:"dtype"`
	Tensors int    `json:"tensors"`
	Params  int64  `json:"params"`
	Bytes   int64  `json:"bytes"`
}

func newInspectJSON(path string, m *onnx.Model) inspectJSON {
	s := onnx.Summarize(m)
	out := inspectJSON{Model: path, IRVersion: s.IRVersion, Opsets: map[string]int64{}, Producer: s.Producer,
		ProducerVersion: s.ProducerVersion, Graph: s.Graph, Nodes: s.Nodes, Ops: s.Ops,
		Inputs: []valueJSON{}, Outputs: []valueJSON{}, Metadata: map[string]string{},
		Weights: weightsJSON{Params: s.Params, Bytes: s.Bytes, ExternalData: s.ExternalData, ByDType: []dtypeJSON{}}}
	maps.Copy(out.Metadata, s.Metadata)
	for d, v := range s.Opsets {
		if d == "" {
			d = "ai.onnx"
		}
		out.Opsets[d] = v
	}
	for _, v := range s.Inputs {
		out.Inputs = append(out.Inputs, newValueJSON(v))
	}
	for _, v := range s.Outputs {
		out.Outputs = append(out.Outputs, newValueJSON(v))
	}
	for _, d := range s.Initializers {
		out.Weights.ByDType = append(out.Weights.ByDType, dtypeJSON{d.DType, d.Count, d.Params, d.Bytes})
	}
	return out
}

func newValueJSON(v onnx.ValueSummary) valueJSON {
	vj := valueJSON{Name: v.Name, DType: v.Type}
	if v.Dims != nil {
		vj.Shape = []dimJSON{}
	}
	for _, d := range v.Dims {
		vj.Shape = append(vj.Shape, dimJSON(d))
	}
	return vj
}

// groupsJSON is what `groups --json` prints: graph.Analysis.
type groupsJSON struct {
	Model           string       `json:"model"`
	Groups          []groupJSON  `json:"groups"`
	Frozen          []frozenJSON `json:"frozen"`
	PermutableUnits int          `json:"permutable_units"`
	HiddenUnits     int          `json:"hidden_units"`
	// BlockSets lists, by group id, the block groups that share one block
	// permutation (the Q·K and V·O groups of one attention).
	BlockSets [][]int `json:"block_sets"`
}

type groupJSON struct {
	ID          int              `json:"id"`
	Size        int              `json:"size"`
	Weights     []weightSiteJSON `json:"weights"`
	Activations []activationJSON `json:"activations"`
	Reasons     []string         `json:"reasons"`
	// Blocks > 1: the group is blocks × size/blocks units (attention
	// heads, grouped convolution blocks) and moves whole blocks.
	Blocks       int  `json:"blocks"`
	FixedWithin  bool `json:"fixed_within"`
	SharedWithin bool `json:"shared_within"`
	// Repeated: units of other layers that move as copies of the group's
	// units (the query heads of grouped-query attention).
	Repeated int `json:"repeated"`
}

type weightSiteJSON struct {
	Node   int    `json:"node"`
	Input  int    `json:"input"`
	Value  string `json:"value"`
	Tensor string `json:"tensor"`
	Axis   int    `json:"axis"`
	Block  int    `json:"block"`
	Offset int    `json:"offset"`
	// Statistic: a data statistic (BatchNorm running mean or variance),
	// permuted with its channels but not scored by weight matching.
	Statistic bool `json:"statistic"`
	// Within: the axis holds one block's units only (a grouped
	// convolution's weight), moved by the shared within-block permutation.
	Within bool `json:"within"`
	// Repeat: the axis holds every block of the group this many times in
	// a row (query heads sharing a K/V head); 1 for most sites.
	Repeat int `json:"repeat"`
}

type activationJSON struct {
	Value  string `json:"value"`
	Axis   int    `json:"axis"`
	Block  int    `json:"block"`
	Offset int    `json:"offset"`
	Repeat int    `json:"repeat"`
}

type frozenJSON struct {
	Value  string `json:"value"`
	Axis   int    `json:"axis"`
	Size   int    `json:"size"`
	Reason string `json:"reason"`
}

func newGroupsJSON(path string, a *graph.Analysis) groupsJSON {
	out := groupsJSON{Model: path, Groups: []groupJSON{}, Frozen: []frozenJSON{},
		PermutableUnits: a.PermutableUnits, HiddenUnits: a.HiddenUnits, BlockSets: [][]int{}}
	out.BlockSets = append(out.BlockSets, a.BlockSets...)
	for _, g := range a.Groups {
		gj := groupJSON{ID: g.ID, Size: g.Size, Weights: []weightSiteJSON{}, Activations: []activationJSON{}, Reasons: []string{},
			Blocks: max(g.Blocks, 1), FixedWithin: g.FixedWithin, SharedWithin: g.SharedWithin, Repeated: g.Repeated}
		for _, s := range g.Weights {
			gj.Weights = append(gj.Weights, weightSiteJSON{s.Node, s.Input, s.Value, s.Tensor, s.Axis, s.Block, s.Offset, s.Statistic, s.Within, max(s.Repeat, 1)})
		}
		for _, s := range g.Activations {
			gj.Activations = append(gj.Activations, activationJSON{s.Value, s.Axis, s.Block, s.Offset, max(s.Repeat, 1)})
		}
		gj.Reasons = append(gj.Reasons, g.Reasons...)
		out.Groups = append(out.Groups, gj)
	}
	for _, f := range a.Frozen {
		out.Frozen = append(out.Frozen, frozenJSON{f.Value, f.Axis, f.Size, f.Reason})
	}
	return out
}

// alignReport is what `align --report` writes. `permute --perms` reads its
// "perms" field back.
type alignReport struct {
	A               string        `json:"a"`
	B               string        `json:"b"`
	Out             string        `json:"out"`
	Method          string        `json:"method"`
	Seed            uint64        `json:"seed"`
	Groups          []groupReport `json:"groups"`
	Sweeps          []sweepJSON   `json:"sweeps"` // empty for --method activation
	ObjectiveBefore float64       `json:"objective_before"`
	ObjectiveAfter  float64       `json:"objective_after"`
	Start           string        `json:"start"` // the first descent's start: signature, identity, activation (hybrid) or "" (activation)
	Restarts        int           `json:"restarts"`
	Descents        []float64     `json:"descents"` // final objective of every descent; empty for --method activation
	ElapsedS        float64       `json:"elapsed_s"`
	Perms           permute.Perms `json:"perms"` // per group: new unit i is old unit perms[g][i] of b
}

type groupReport struct {
	ID    int `json:"id"`
	Size  int `json:"size"`
	Moved int `json:"moved"` // units not mapped to themselves
}

// sweepJSON is one weight-matching sweep (match.Sweep).
type sweepJSON struct {
	N         int     `json:"n"`
	Objective float64 `json:"objective"`
	Changed   int     `json:"changed"`   // groups whose permutation changed
	ElapsedS  float64 `json:"elapsed_s"` // since matching started
}

func newSweepsJSON(sweeps []match.Sweep) []sweepJSON {
	out := []sweepJSON{}
	for _, s := range sweeps {
		out = append(out, sweepJSON{s.N, s.Objective, s.Changed, s.Elapsed.Seconds()})
	}
	return out
}

// evalJSON is what `eval --json` prints.
type evalJSON struct {
	Model  string `json:"model"`
	Data   string `json:"data"`
	Labels string `json:"labels,omitempty"`
	// Samples counts the samples evaluated: those without NaN or infinite
	// inputs. NonFiniteRows counts the others.
	Samples       int      `json:"samples"`
	NonFiniteRows int      `json:"non_finite_rows"`
	Accuracy      *float64 `json:"accuracy,omitempty"` // top-1, with labels only
	Loss          *float64 `json:"loss,omitempty"`     // mean cross-entropy, with labels only
	ElapsedS      float64  `json:"elapsed_s"`
	SamplesPerS   float64  `json:"samples_per_s"`
}

func newEvalJSON(model, data, labels string, res eval.Result, nonFinite int) evalJSON {
	out := evalJSON{Model: model, Data: data, Labels: labels, Samples: res.Samples, NonFiniteRows: nonFinite,
		ElapsedS: res.Seconds, SamplesPerS: res.PerSecond}
	if res.HaveLabels {
		out.Accuracy, out.Loss = &res.Accuracy, &res.Loss
	}
	return out
}

// barrierJSON is what `barrier --json` prints.
type barrierJSON struct {
	A      string         `json:"a"`
	B      string         `json:"b"`
	Method string         `json:"method"`
	Paths  []barrier.Path `json:"paths"`
}

// printJSON writes v to w, indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSON writes v to the file path, atomically.
func writeJSON(path string, v any) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		if err := printJSON(w, v); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}
