package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// loadAnalyzed loads a model and infers its permutation groups.
func loadAnalyzed(path string) (*onnx.Model, *graph.Analysis, error) {
	m, err := onnx.Load(path)
	if err != nil {
		return nil, nil, err
	}
	a, err := graph.Analyze(m)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, a, nil
}

func runGroups(c *cmdContext, args []string) error {
	fs := newFlags(c, "groups", "model.onnx [--json]", "List the permutation groups inferred from the graph: size, members, what tied them, and the frozen axes with the reason.")
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
	_, a, err := loadAnalyzed(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, newGroupsJSON(pos[0], a))
	}
	w := c.stdout
	setOf := map[int][]int{}
	for _, set := range a.BlockSets {
		for _, g := range set {
			setOf[g] = set
		}
	}
	for _, g := range a.Groups {
		fmt.Fprintf(w, "group %d: %s%s\n", g.ID, plural(g.Size, "unit", "units"), blockNote(g, setOf[g.ID]))
		for _, s := range g.Weights {
			extra := ""
			if s.Block > 1 {
				extra += fmt.Sprintf(" blocks of %d", s.Block)
			}
			if s.Offset > 0 {
				extra += fmt.Sprintf(" at offset %d", s.Offset)
			}
			if s.Within {
				extra += " (one block)"
			}
			if s.Repeat > 1 {
				extra += fmt.Sprintf(" (query heads: each unit %d times)", s.Repeat)
			}
			fmt.Fprintf(w, "  weight %s axis %d%s\n", s.Tensor, s.Axis, extra)
		}
		for _, r := range g.Reasons {
			fmt.Fprintf(w, "  tied by %s\n", r)
		}
	}
	for _, f := range a.Frozen {
		fmt.Fprintf(w, "frozen: %s axis %d (%d): %s\n", f.Value, f.Axis, f.Size, f.Reason)
	}
	fmt.Fprintln(w, a.Summary())
	return nil
}

// checkModelOutput refuses a missing -o and one without a file extension
// (a likely slip such as "-o out" for "-o out.onnx").
func checkModelOutput(out string) error {
	if out == "" {
		return usagef("missing -o output path")
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return nil // files.check says what is wrong
	}
	if filepath.Ext(out) == "" {
		return usagef("-o %s: expected a file name such as out.onnx", out)
	}
	return nil
}

// blockNote describes a block-structured group's blocks and the groups it
// shares their permutation with, e.g. " (4 blocks × 16: blocks move whole,
// with group 5)".
func blockNote(g graph.Group, set []int) string {
	repeat := 0
	for _, s := range g.Weights {
		repeat = max(repeat, s.Repeat)
	}
	query := ""
	if repeat > 1 {
		query = fmt.Sprintf("%d query heads per K/V head move with it, in order", repeat)
	}
	if g.Blocks < 2 {
		if query != "" {
			return " (" + query + ")"
		}
		return ""
	}
	var others []string
	for _, h := range set {
		if h != g.ID {
			others = append(others, fmt.Sprint(h))
		}
	}
	note := fmt.Sprintf(" (%d blocks × %d: blocks move whole", g.Blocks, g.Size/g.Blocks)
	switch {
	case g.FixedWithin:
		note += ", units keep their place in the block"
	case g.SharedWithin:
		note += ", units move alike in every block"
	}
	if len(others) > 0 {
		note += ", with group " + strings.Join(others, ", ")
	}
	if query != "" {
		note += "; " + query
	}
	return note + ")"
}
