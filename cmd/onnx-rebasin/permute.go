package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// runPermute is the permute command: random or given permutations of a
// model, for tests of function invariance and self-recovery.
func runPermute(c *cmdContext, args []string) error {
	fs := newFlags(c, "permute", "model.onnx -o out.onnx [--seed N | --perms report.json]",
		"Write the model with its hidden units permuted: a random permutation of every group drawn from --seed, or the permutations of an align report. The output computes the same function.")
	out := fs.output("output model `path` (required)")
	seed := fs.seed("the permutations (and --verify's random inputs)")
	permsFile := fs.String("perms", "", "apply the permutations of this align report (JSON) instead of random ones")
	quiet := fs.quiet()
	force := fs.force()
	verify := fs.Bool("verify", false, "run input and output with the built-in interpreter and fail if their outputs differ")
	verifyData := fs.String("verify-data", "", "with --verify: inputs (.npy) to compare on instead of random ones")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if *permsFile != "" && flagGiven(fs, "seed") && !*verify {
		return usagef("permute: --seed and --perms exclude each other")
	}
	if *verifyData != "" && !*verify {
		return usagef("permute: --verify-data needs --verify")
	}
	paths := files{force: *force}
	paths.read("model", pos[0])
	paths.read("--perms", *permsFile)
	paths.read("--verify-data", *verifyData)
	if err := checkModelOutput(*out); err != nil {
		return err
	}
	paths.write("-o", *out)
	if err := paths.check(); err != nil {
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
	if err := m.SaveContext(c.ctx, *out); err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(c.stderr, "permuted %s (%s) of %s into %s\n", plural(len(a.Groups), "group", "groups"),
			plural(a.PermutableUnits, "unit", "units"), pos[0], *out)
	}
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
