package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

func runInspect(c *cmdContext, args []string) error {
	fs := newFlags(c, "inspect", "model.onnx [--json]", "Show a model's IR version, opsets, producer, inputs and outputs, operator counts and weights.")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	m, err := onnx.Load(pos[0])
	if err != nil {
		return err
	}
	s := onnx.Summarize(m)
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	w := c.stdout
	fmt.Fprintf(w, "model:     %s\n", pos[0])
	fmt.Fprintf(w, "ir:        %d\n", s.IRVersion)
	var ops []string
	for _, d := range sortedKeys(s.Opsets) {
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
	for _, op := range sortedKeys(s.Ops) {
		fmt.Fprintf(w, "  %-24s %d\n", op, s.Ops[op])
	}
	ext := ""
	if s.ExternalData {
		ext = " (external data)"
	}
	fmt.Fprintf(w, "weights:   %d params, %d bytes%s\n", s.Params, s.Bytes, ext)
	for _, d := range s.Initializers {
		fmt.Fprintf(w, "  %-10s %4d tensors %12d params %12d bytes\n", d.DType, d.Count, d.Params, d.Bytes)
	}
	if len(s.Metadata) > 0 {
		fmt.Fprintf(w, "metadata:\n")
		for _, k := range sortedKeys(s.Metadata) {
			fmt.Fprintf(w, "  %s: %s\n", k, s.Metadata[k])
		}
	}
	return nil
}
