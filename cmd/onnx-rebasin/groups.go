package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
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
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	_, a, err := loadAnalyzed(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(a)
	}
	w := c.stdout
	setOf := map[int][]int{}
	for _, set := range a.BlockSets {
		for _, g := range set {
			setOf[g] = set
		}
	}
	for _, g := range a.Groups {
		fmt.Fprintf(w, "group %d: %d units%s\n", g.ID, g.Size, blockNote(g, setOf[g.ID]))
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
			fmt.Fprintf(w, "  weight %s axis %d%s\n", s.Tensor, s.Axis, extra)
		}
		for _, r := range g.Reasons {
			fmt.Fprintf(w, "  tied by %s\n", r)
		}
	}
	for _, f := range a.Frozen {
		fmt.Fprintf(w, "frozen: %s axis %d (%d): %s\n", f.Value, f.Axis, f.Size, f.Reason)
	}
	fmt.Fprintf(w, "groups: %d (%d permutable units / %d hidden units), frozen: %d axes\n",
		len(a.Groups), a.PermutableUnits, a.HiddenUnits, len(a.Frozen))
	return nil
}

func runPermute(c *cmdContext, args []string) error {
	fs := newFlags(c, "permute", "model.onnx -o out.onnx [--seed N | --perms report.json]",
		"Write the model with its hidden units permuted: a random permutation of every group drawn from --seed, or the permutations of an align report. The output computes the same function.")
	out := fs.String("o", "", "output model `path` (required)")
	seed := fs.Uint64("seed", 1, "random seed for the permutations")
	permsFile := fs.String("perms", "", "apply the permutations of this align report (JSON) instead of random ones")
	force := fs.Bool("force", false, "allow the output to replace an input file")
	verify := fs.Bool("verify", false, "run input and output with the built-in interpreter and fail if their outputs differ")
	verifyData := fs.String("verify-data", "", "with --verify: inputs (.npy) to compare on instead of random ones")
	pos, err := parseFlags(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkOutput(*out, *force, pos...); err != nil {
		return err
	}
	m, a, err := loadAnalyzed(pos[0])
	if err != nil {
		return err
	}
	perms := permute.Random(a, *seed)
	if *permsFile != "" {
		if perms, err = readPerms(*permsFile); err != nil {
			return err
		}
	}
	orig := m.Clone()
	if err := permute.Apply(m, a, perms); err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *verify {
		if err := verifySame(orig, m, *verifyData, *seed); err != nil {
			return err
		}
	}
	if err := m.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "permuted %d groups (%d units) of %s into %s\n", len(a.Groups), a.PermutableUnits, pos[0], *out)
	return nil
}

// readPerms reads the "perms" field of an align report.
func readPerms(path string) (permute.Perms, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r struct {
		Perms permute.Perms `json:"perms"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Perms == nil {
		return nil, fmt.Errorf("%s: no \"perms\" field", path)
	}
	return r.Perms, nil
}

// checkOutput refuses a missing output path, and one that is an input file
// unless force is set (never overwrite an input unless asked).
func checkOutput(out string, force bool, inputs ...string) error {
	if out == "" {
		return usagef("missing -o output path")
	}
	if !strings.HasSuffix(out, ".onnx") && filepath.Ext(out) == "" {
		return usagef("output %q: expected a file name such as out.onnx", out)
	}
	if force {
		return nil
	}
	oi, err := os.Stat(out)
	if err != nil {
		return nil
	}
	for _, in := range inputs {
		if ii, err := os.Stat(in); err == nil && os.SameFile(oi, ii) {
			return fmt.Errorf("%s: output would overwrite input %s (use --force to allow)", out, in)
		}
	}
	return nil
}

// blockNote describes a block-structured group's blocks and the groups it
// shares their permutation with, e.g. " (4 blocks × 16: blocks move whole,
// with group 5)".
func blockNote(g graph.Group, set []int) string {
	if g.Blocks < 2 {
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
	return note + ")"
}
