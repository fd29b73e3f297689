package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"onnx-rebasin": func() { os.Exit(mainExit()) },
	})
}

// TestScripts runs the CLI end to end from testdata/script/*.txtar. $MODELS
// is the committed test model folder.
func TestScripts(t *testing.T) {
	models, err := filepath.Abs("../../testmodels")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("MODELS", models)
			return nil
		},
	})
}
