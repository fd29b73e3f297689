package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/onnx-rebasin/onnx-rebasin/soup"
)

func runSoup(c *cmdContext, args []string) error {
	fs := newFlags(c, "soup", "recipe.yaml -o soup.onnx [--json]",
		"Build a model soup as a recipe file says (mergekit-style YAML or JSON: models, base_model, merge_method, parameters, align, eval, ...; see docs/soup.md).")
	out := fs.output("output model `path` (required)")
	asJSON := fs.asJSON()
	batch := fs.batch()
	quiet := fs.quiet()
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkModelOutput(*out); err != nil {
		return err
	}
	paths := files{}
	paths.read("recipe", pos[0])
	paths.write("-o", *out)
	if err := paths.check(); err != nil {
		return err
	}
	r, err := soup.ReadRecipe(pos[0])
	if err != nil {
		return err
	}
	var log io.Writer
	if !*quiet {
		log = c.stderr
	}
	res, err := soup.Build(r, *out, soup.Options{Version: versionString(), Log: log, Batch: *batch, Context: c.ctx})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if len(res.Greedy) > 0 {
		fmt.Fprintf(c.stdout, "%-40s %9s %9s %s\n", "ingredient", "accuracy", "soup", "kept")
		for _, s := range res.Greedy {
			fmt.Fprintf(c.stdout, "%-40s %9.4f %9.4f %v\n", s.Model, s.Accuracy, s.SoupAccuracy, s.Kept)
		}
	}
	if !*quiet {
		fmt.Fprintf(c.stderr, "wrote %s\n", *out)
	}
	return nil
}
