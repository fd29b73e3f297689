package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
// large/ folder has the torchvision exports (make_models.py --large, which
// CI runs), and they must exist under CI, where [!large] would skip a script.
// Besides exec, scripts have "exits N command args...": run the command and
// require exit status N exactly (2 usage, 1 failure).
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
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": exitsCmd,
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

// exitsCmd is the script command "exits N command args...".
func exitsCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N command args...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not a number", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}
