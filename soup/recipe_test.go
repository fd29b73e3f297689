package soup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRecipe(t *testing.T) {
	r, err := ParseRecipe([]byte(`
merge_method: ties
base_model: base.onnx
models:
  - model: a.onnx
    parameters: {weight: 0.7, density: 0.5}
  - model: b.onnx
parameters:
  lambda: 0.9
  normalize: false
seed: 3
`))
	if err != nil {
		t.Fatal(err)
	}
	if r.MergeMethod != "ties" || r.BaseModel != "base.onnx" || len(r.Models) != 2 || *r.Models[0].Parameters.Weight != 0.7 ||
		*r.Parameters.Lambda != 0.9 || *r.Parameters.Normalize || r.Seed != 3 {
		t.Fatalf("parsed %+v", r)
	}
	// JSON is accepted and gives the same recipe.
	j, err := ParseRecipe([]byte(r.Canonical()))
	if err != nil {
		t.Fatal(err)
	}
	if j.Canonical() != r.Canonical() {
		t.Errorf("JSON round trip:\n%s\n%s", j.Canonical(), r.Canonical())
	}
	want := `{"models":[{"model":"a.onnx","parameters":{"weight":0.7,"density":0.5}},{"model":"b.onnx","parameters":{}}],"base_model":"base.onnx","merge_method":"ties","parameters":{"lambda":0.9,"normalize":false},"seed":3}`
	if r.Canonical() != want {
		t.Errorf("canonical:\n got %s\nwant %s", r.Canonical(), want)
	}
}

func TestRecipeErrors(t *testing.T) {
	for _, c := range []struct{ recipe, want string }{
		{"merge_method: linear\nmodels: [{model: a.onnx}]\nlamda: 2\n", `line 3: unknown key "lamda"`},
		{"merge_method: linear\nmodels:\n  - model: a.onnx\n    parameters: {wieght: 1}\n", `line 4: unknown key "wieght"`},
		{"merge_method: linear\nmodels:\n  - model: a.onnx\n    parameters: {weight: heavy}\n", "line 4: models[0].parameters.weight: wrong type: `heavy` is a str, want float64"},
		{"merge_method: slerp\nbase_model: a.onnx\nmodels: [{model: a.onnx}, {model: b.onnx}]\nparameters: {t: [0, 1]}\n", "line 4: parameters.t: wrong type: a seq, want float64"},
		{"merge_method: linear\nmodels: [{model: a.onnx}]\nseed: -1\n", "line 3: seed: wrong type: `-1` is a int, want uint64"},
		{"merge_method: linear\nmodels: [{model: a.onnx}, {model: b.onnx, parameters: {weight: heavy}}]\n", "line 2: models[1].parameters.weight: wrong type"},
		{"merge_method: linear\nmodels: {model: a.onnx}\n", "line 2: models: wrong type: a map"},
		{"", "empty recipe"},
		{"models: [{model: a.onnx}]\n", "merge_method is missing"},
		{"merge_method: soup\nmodels: [{model: a.onnx}]\n", `merge_method "soup" is not one of`},
		{"merge_method: linear\nmodels: []\n", "models is empty"},
		{"merge_method: ties\nmodels: [{model: a.onnx}]\n", "needs base_model"},
		{"merge_method: ties\nbase_model: b.onnx\nmodels: [{model: a.onnx, parameters: {density: 0}}]\n", "density = 0 is not in (0, 1]"},
		{"merge_method: linear\nmodels: [{model: a.onnx}]\nparameters: {t: 0.5}\n", "does not use parameter t"},
		{"merge_method: slerp\nbase_model: a.onnx\nmodels: [{model: a.onnx}, {model: b.onnx}]\n", "needs parameters.t"},
		{"merge_method: slerp\nbase_model: a.onnx\nmodels: [{model: a.onnx}, {model: b.onnx}, {model: c.onnx}]\nparameters: {t: 0.5}\n", "exactly two models"},
		{"merge_method: model_stock\nbase_model: a.onnx\nmodels: [{model: b.onnx}]\n", "at least two other models"},
		{"merge_method: greedy\nmodels: [{model: a.onnx}]\n", "needs eval"},
		{"merge_method: linear\nmodels: [{model: a.onnx}]\nalign: {method: activation}\n", "needs align.data"},
		{"merge_method: linear\nmodels: [{model: a.onnx}]\ndtype: int8\n", `dtype "int8"`},
		{"merge_method: linear\nmodels: [{model: a.onnx}]\n---\nmerge_method: linear\n", "more than one YAML document"},
		{"merge_method: linear\nmodels: [{model: a.onnx}\n", "not a valid recipe"},
	} {
		_, err := ParseRecipe([]byte(c.recipe))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("recipe %q: error %v, want it to contain %q", c.recipe, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("recipe %q: error is not one line: %q", c.recipe, err)
		}
	}
}

func TestReadRecipeNamesFileAndRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(path, []byte("merge_method: linear\nmodels: [{model: m.onnx}]\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadRecipe(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+": line 3: unknown key") {
		t.Errorf("error %v, want it to start with the file and line", err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecipe(link); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("symlinked recipe: error %v", err)
	}
	if err := os.WriteFile(path, []byte("merge_method: linear\nmodels: [{model: sub/m.onnx}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadRecipe(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Path(r.Models[0].Model); got != filepath.Join(dir, "sub", "m.onnx") {
		t.Errorf("path %s is not relative to the recipe", got)
	}
}

// FuzzParseRecipe: any input gives a recipe or a one-line error, never a
// panic, and an accepted recipe's canonical JSON parses back to itself.
func FuzzParseRecipe(f *testing.F) {
	f.Add([]byte("merge_method: ties\nbase_model: b.onnx\nmodels: [{model: a.onnx, parameters: {weight: 1, density: 0.5}}]\nparameters: {lambda: 0.9}\n"))
	f.Add([]byte(`{"merge_method": "slerp", "base_model": "a", "models": [{"model": "a"}, {"model": "b"}], "parameters": {"t": 0.3}}`))
	f.Add([]byte("merge_method: greedy\nmodels: [{model: a}]\neval: {data: x.npy, labels: y.npy}\nalign: {method: activation, data: x.npy}\n"))
	f.Add([]byte("models: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecipe(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		again, err := ParseRecipe([]byte(r.Canonical()))
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", r.Canonical(), err)
		}
		if again.Canonical() != r.Canonical() {
			t.Fatalf("canonical form changes: %s vs %s", again.Canonical(), r.Canonical())
		}
	})
}
