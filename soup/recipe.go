package soup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Recipe says how to build a soup. Field names follow mergekit's YAML
// configuration where mergekit has them (models, base_model, merge_method,
// parameters, dtype); align, reset_bn, repair, eval and seed are ours.
type Recipe struct {
	Models      []Ingredient `yaml:"models" json:"models"`
	BaseModel   string       `yaml:"base_model" json:"base_model,omitempty"`
	MergeMethod string       `yaml:"merge_method" json:"merge_method"`
	Parameters  Parameters   `yaml:"parameters" json:"parameters"`
	// Dtype is the element type of the output's float weights; it must be
	// the type the base already has (see docs/soup.md).
	Dtype   string `yaml:"dtype" json:"dtype,omitempty"`
	Align   *Align `yaml:"align" json:"align,omitempty"`
	ResetBN string `yaml:"reset_bn" json:"reset_bn,omitempty"`
	Repair  string `yaml:"repair" json:"repair,omitempty"`
	Eval    *Eval  `yaml:"eval" json:"eval,omitempty"`
	Seed    uint64 `yaml:"seed" json:"seed"`

	// dir is the folder paths in the recipe are relative to.
	dir string
}

// Ingredient is one model of the soup with its own parameters.
type Ingredient struct {
	Model      string          `yaml:"model" json:"model"`
	Parameters ModelParameters `yaml:"parameters" json:"parameters"`
}

// ModelParameters are mergekit's per-model (tensor) parameters.
type ModelParameters struct {
	Weight  *float64 `yaml:"weight" json:"weight,omitempty"`
	Density *float64 `yaml:"density" json:"density,omitempty"`
}

// Parameters are mergekit's global parameters; each method reads the ones
// it uses and the others are refused.
type Parameters struct {
	T          *float64 `yaml:"t" json:"t,omitempty"`
	Lambda     *float64 `yaml:"lambda" json:"lambda,omitempty"`
	Density    *float64 `yaml:"density" json:"density,omitempty"`
	Weight     *float64 `yaml:"weight" json:"weight,omitempty"`
	Normalize  *bool    `yaml:"normalize" json:"normalize,omitempty"`
	FilterWise *bool    `yaml:"filter_wise" json:"filter_wise,omitempty"`
}

// Align asks for the models to be aligned to the base (or the first model)
// before they are combined.
type Align struct {
	Method  string `yaml:"method" json:"method"` // weight (default) or activation
	Data    string `yaml:"data" json:"data,omitempty"`
	MaxIter int    `yaml:"max_iter" json:"max_iter,omitempty"`
}

// Eval is the held-out data the greedy soup is ranked and grown on.
type Eval struct {
	Data   string `yaml:"data" json:"data"`
	Labels string `yaml:"labels" json:"labels"`
}

// Methods are the merge methods a recipe can name.
var Methods = []string{"linear", "greedy", "task_arithmetic", "ties", "dare_linear", "dare_ties", "slerp", "model_stock"}

// maxRecipeBytes bounds what ReadRecipe reads: a recipe is a small file.
const maxRecipeBytes = 1 << 20

// ReadRecipe reads and checks a recipe file (YAML, or JSON, which is YAML).
// Paths in it are relative to the file's folder. Errors name the file and,
// for unknown keys and wrong types, the line.
func ReadRecipe(path string) (*Recipe, error) {
	data, err := readRegular(path, maxRecipeBytes)
	if err != nil {
		return nil, err
	}
	r, err := ParseRecipe(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.dir = filepath.Dir(path)
	return r, nil
}

// ParseRecipe decodes and checks a recipe; paths in it are relative to the
// current folder.
func ParseRecipe(data []byte) (*Recipe, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	r := &Recipe{dir: "."}
	if err := dec.Decode(r); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty recipe")
		}
		var root yaml.Node
		if yaml.Unmarshal(data, &root) != nil {
			root = yaml.Node{}
		}
		return nil, yamlError(err, &root)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return r, nil
}

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)
	wrongType    = regexp.MustCompile(`(?s)^line (\d+): cannot unmarshal !!(\w+)(?: (.*))? into (\S+)$`)
)

// yamlError rewrites yaml.v3's errors as one line each: "line 3: unknown
// key "foo"", "line 5: models[0].parameters.weight: wrong type: `abc` is a
// str, want float64" (root, the document, names the key at a line).
func yamlError(err error, root *yaml.Node) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("not a valid recipe: %s", oneLine(strings.TrimPrefix(err.Error(), "yaml: ")))
	}
	var msgs []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: unknown key %q", m[1], m[2]))
		} else if m := wrongType.FindStringSubmatch(e); m != nil {
			want := strings.TrimPrefix(strings.TrimPrefix(m[4], "*"), "soup.")
			switch {
			case strings.HasPrefix(want, "[]"):
				want = "a list"
			case want != "" && want[0] >= 'A' && want[0] <= 'Z':
				want = "a mapping"
			}
			what := "a " + m[2]
			if m[3] != "" {
				what = m[3] + " is a " + m[2]
			}
			key := keyAt(root, m[1], m[2], m[3])
			if key != "" {
				key += ": "
			}
			msgs = append(msgs, fmt.Sprintf("line %s: %swrong type: %s, want %s", m[1], key, what, want))
		} else {
			msgs = append(msgs, e)
		}
	}
	return errors.New(oneLine(strings.Join(msgs, "; ")))
}

// oneLine escapes line breaks, so that an error stays one line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", `\n`) }

// keyAt returns the path (models[0].parameters.weight) of the first node
// on line with the tag (str, int, seq, ...) and, if not empty, the value
// yaml.v3 reported, or "".
func keyAt(n *yaml.Node, line, tag, value string) string {
	match := func(v *yaml.Node) bool {
		return strconv.Itoa(v.Line) == line && v.ShortTag() == "!!"+tag && (value == "" || "`"+v.Value+"`" == value)
	}
	var find func(n *yaml.Node, path string) string
	find = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := find(c, path); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if match(v) {
					return p
				}
				if q := find(v, p); q != "" {
					return q
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if match(c) {
					return p
				}
				if q := find(c, p); q != "" {
					return q
				}
			}
		}
		return ""
	}
	return find(n, "")
}

// check validates what the types cannot.
func (r *Recipe) check() error {
	if r.MergeMethod == "" {
		return errors.New("merge_method is missing (one of " + strings.Join(Methods, ", ") + ")")
	}
	known := false
	for _, m := range Methods {
		known = known || m == r.MergeMethod
	}
	if !known {
		return fmt.Errorf("merge_method %q is not one of %s", r.MergeMethod, strings.Join(Methods, ", "))
	}
	if len(r.Models) == 0 {
		return errors.New("models is empty")
	}
	for i, m := range r.Models {
		if m.Model == "" {
			return fmt.Errorf("models[%d]: model (a path) is missing", i)
		}
		if err := finite(fmt.Sprintf("models[%d].parameters.weight", i), m.Parameters.Weight); err != nil {
			return err
		}
		if err := fraction(fmt.Sprintf("models[%d].parameters.density", i), m.Parameters.Density); err != nil {
			return err
		}
	}
	p := r.Parameters
	for name, v := range map[string]*float64{"parameters.lambda": p.Lambda, "parameters.weight": p.Weight} {
		if err := finite(name, v); err != nil {
			return err
		}
	}
	if err := fraction("parameters.density", p.Density); err != nil {
		return err
	}
	if p.T != nil && (math.IsNaN(*p.T) || *p.T < 0 || *p.T > 1) {
		return fmt.Errorf("parameters.t = %v is not in [0, 1]", *p.T)
	}
	// Refuse parameters the method would ignore: a typo'd recipe must not
	// build something else silently.
	uses := map[string][]string{
		"linear":          {"weight", "normalize"},
		"greedy":          {},
		"task_arithmetic": {"weight", "lambda", "normalize"},
		"ties":            {"weight", "density", "lambda", "normalize"},
		"dare_linear":     {"weight", "density", "lambda", "normalize"},
		"dare_ties":       {"weight", "density", "lambda", "normalize"},
		"slerp":           {"t"},
		"model_stock":     {"filter_wise"},
	}[r.MergeMethod]
	set := map[string]bool{"t": p.T != nil, "lambda": p.Lambda != nil, "density": p.Density != nil,
		"weight": p.Weight != nil, "normalize": p.Normalize != nil, "filter_wise": p.FilterWise != nil}
	for _, m := range r.Models {
		set["weight"] = set["weight"] || m.Parameters.Weight != nil
		set["density"] = set["density"] || m.Parameters.Density != nil
	}
	for _, name := range []string{"t", "lambda", "density", "weight", "normalize", "filter_wise"} {
		if set[name] && !contains(uses, name) {
			return fmt.Errorf("merge_method %s does not use parameter %s", r.MergeMethod, name)
		}
	}
	switch r.MergeMethod {
	case "task_arithmetic", "ties", "dare_linear", "dare_ties", "model_stock":
		if r.BaseModel == "" {
			return fmt.Errorf("merge_method %s needs base_model", r.MergeMethod)
		}
	case "slerp":
		if p.T == nil {
			return errors.New("merge_method slerp needs parameters.t")
		}
		if r.BaseModel == "" {
			return errors.New("merge_method slerp needs base_model (the model at t = 0)")
		}
	case "greedy":
		if r.Eval == nil || r.Eval.Data == "" || r.Eval.Labels == "" {
			return errors.New("merge_method greedy needs eval: {data, labels} (held-out data)")
		}
	}
	if r.MergeMethod == "model_stock" && len(r.fineTunes()) < 2 {
		return errors.New("merge_method model_stock needs base_model and at least two other models")
	}
	if r.MergeMethod == "slerp" && len(r.fineTunes()) != 1 {
		return errors.New("merge_method slerp needs exactly two models: base_model and one other")
	}
	if r.Align != nil {
		switch r.Align.Method {
		case "", "weight":
			if r.Align.Data != "" {
				return errors.New("align.data is only used by align.method activation")
			}
		case "activation":
			if r.Align.Data == "" {
				return errors.New("align.method activation needs align.data")
			}
		default:
			return fmt.Errorf("align.method %q is not weight or activation", r.Align.Method)
		}
		if r.Align.MaxIter < 0 {
			return errors.New("align.max_iter is negative")
		}
	}
	if r.Repair != "" && (r.MergeMethod != "linear" || len(r.Models) != 2 || r.Align == nil) {
		return errors.New("repair works with merge_method linear on two aligned models (align: {...})")
	}
	switch r.Dtype {
	case "", "float32", "float16", "bfloat16", "float64":
	default:
		return fmt.Errorf("dtype %q is not float32, float16, bfloat16 or float64", r.Dtype)
	}
	return nil
}

// fineTunes returns the models other than the base, by their paths as
// written in the recipe.
func (r *Recipe) fineTunes() []Ingredient {
	var out []Ingredient
	for _, m := range r.Models {
		if r.BaseModel == "" || filepath.Clean(m.Model) != filepath.Clean(r.BaseModel) {
			out = append(out, m)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func finite(name string, v *float64) error {
	if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
		return fmt.Errorf("%s = %v is not finite", name, *v)
	}
	return nil
}

func fraction(name string, v *float64) error {
	if v != nil && (math.IsNaN(*v) || *v <= 0 || *v > 1) {
		return fmt.Errorf("%s = %v is not in (0, 1]", name, *v)
	}
	return nil
}

// Canonical returns the recipe as canonical JSON: fields in a fixed order,
// no insignificant space. It is what the output's metadata records.
func (r *Recipe) Canonical() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // only plain values: cannot fail
	}
	return string(b)
}

// Path resolves a path written in the recipe against the recipe's folder.
func (r *Recipe) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.dir, p)
}

// readRegular reads a regular file of at most max bytes, refusing
// symbolic links, devices and pipes.
func readRegular(path string, max int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes; a recipe has at most %d", path, fi.Size(), max)
	}
	return os.ReadFile(path)
}
