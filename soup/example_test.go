package soup_test

import (
	"fmt"

	"github.com/onnx-rebasin/onnx-rebasin/soup"
)

// A recipe in mergekit's format; Canonical is what the output's metadata
// records. soup.Build(r, "soup.onnx", soup.Options{}) would build it.
func ExampleParseRecipe() {
	r, err := soup.ParseRecipe([]byte(`
merge_method: dare_ties
base_model: base.onnx
models:
  - model: math.onnx
    parameters: {weight: 0.6, density: 0.5}
  - model: code.onnx
    parameters: {weight: 0.4, density: 0.5}
seed: 1
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Canonical())
	_, err = soup.ParseRecipe([]byte("merge_method: dare_ties\nbase_model: base.onnx\nmodels: [{model: a.onnx}]\nparameters: {densty: 0.5}\n"))
	fmt.Println(err)
	// Output:
	// {"models":[{"model":"math.onnx","parameters":{"weight":0.6,"density":0.5}},{"model":"code.onnx","parameters":{"weight":0.4,"density":0.5}}],"base_model":"base.onnx","merge_method":"dare_ties","parameters":{},"seed":1}
	// line 4: unknown key "densty"
}
