package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

func runInspect(c *cmdContext, args []string) error {
	fs := newFlags(c, "inspect", "model.onnx [--json]", "Show a model's IR version, opsets, producer, inputs and outputs, operator counts and weights.")
	asJSON := fs.asJSON()
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	var paths files
	paths.read("model", pos[0])
	if err := paths.check(); err != nil {
		return err
	}
	m, err := onnx.Load(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, newInspectJSON(pos[0], m))
	}
	s := onnx.Summarize(m)
	w := c.stdout
	fmt.Fprintf(w, "model:     %s\n", pos[0])
	fmt.Fprintf(w, "ir:        %d\n", s.IRVersion)
	var ops []string
	for _, d := range slices.Sorted(maps.Keys(s.Opsets)) {
		name := d
		if name == "" {
			name = "ai.onnx"
		}
		ops = append(ops, fmt.Sprintf("%s %d", name, s.Opsets[d]))
	}
	fmt.Fprintf(w, "opsets:    %s\n", strings.Join(ops, ", "))
	fmt.Fprintf(w, "producer:  %s %s\n", s.Producer, s.ProducerVersion)
	for _, v := range s.Inputs {
		fmt.Fprintf(w, "input:     %s %s [%s]\n", v.Name, v.Type, strings.Join(v.Shape, " "))
	}
	for _, v := range s.Outputs {
		fmt.Fprintf(w, "output:    %s %s [%s]\n", v.Name, v.Type, strings.Join(v.Shape, " "))
	}
	fmt.Fprintf(w, "nodes:     %d\n", s.Nodes)
	for _, op := range slices.Sorted(maps.Keys(s.Ops)) {
		fmt.Fprintf(w, "  %-24s %d\n", op, s.Ops[op])
	}
	ext := ""
	if s.ExternalData {
		ext = " (external data)"
	}
	fmt.Fprintf(w, "weights:   %s, %d bytes%s\n", plural(int(s.Params), "param", "params"), s.Bytes, ext)
	for _, d := range s.Initializers {
		fmt.Fprintf(w, "  %-10s %4d %-7s %12d params %12d bytes\n", d.DType, d.Count, pluralWord(d.Count, "tensor", "tensors"), d.Params, d.Bytes)
	}
	if len(s.Metadata) > 0 {
		fmt.Fprintf(w, "metadata:\n")
		for _, k := range sortedKeys(s.Metadata) {
			fmt.Fprintf(w, "  %s: %s\n", k, s.Metadata[k])
		}
	}
	return nil
}
