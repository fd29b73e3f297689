package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"onnx-rebasin": func() { os.Exit(mainExit()) },
	})
}

// TestScripts runs the CLI end to end from testdata/script/*.txtar. $MODELS
// is the committed test model folder; the condition [large] holds when its
// large/ folder has the torchvision exports (make large), and they must
// under CI, where [!large] would skip a script.
func TestScripts(t *testing.T) {
	models, err := filepath.Abs("../../testmodels")
	if err != nil {
		t.Fatal(err)
	}
	_, errLarge := os.Stat(filepath.Join(models, "large", "resnet18_bn.onnx"))
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("MODELS", models)
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "large" {
				if errLarge != nil && testreq.CI() {
					return false, fmt.Errorf("[large] is required under CI: %v; generate the models with %s", errLarge, testreq.LargeHint)
				}
				return errLarge == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}
