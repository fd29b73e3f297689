// Package testreq is for tests whose inputs live outside the test: committed
// test models, generated large models, Debian-packaged data. What a test
// needs and cannot find makes it fail when the environment says everything
// must be there (CI set), and skip, naming how to get it, elsewhere; files
// that are committed must always be there.
package testreq

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LargeNames are the models testmodels/make_models.py --large writes into
// testmodels/large (git-ignored; `make large` generates them).
var LargeNames = []string{"resnet18", "resnet18_bn", "mobilenet_v2", "densenet121", "vit_tiny", "regnet_x_400mf", "resnext50_32x4d"}

// LargeHint says how to generate the large models.
const LargeHint = "make large (runs /usr/bin/python3 testmodels/make_models.py --large)"

// CI reports whether env CI is set to anything but "", "false" or "0".
func CI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// Missing fails the test under CI and skips it elsewhere, with the message.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("required under CI: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// Glob returns the files matching pattern and fails the test when there are
// none: for committed files, whose absence is a broken checkout.
func Glob(t testing.TB, pattern string) []string {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatalf("glob %s: %v", pattern, err)
	}
	if len(paths) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return paths
}

// File fails the test unless path exists: for committed files.
func File(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// LargeModels returns the paths of the large models in dir (the
// testmodels/large folder): those of LargeNames, in that order, then any
// other .onnx file there. Under CI every one of LargeNames must exist;
// elsewhere the missing ones are logged and left out, so the result may be
// empty.
func LargeModels(t testing.TB, dir string) []string {
	t.Helper()
	var paths, missing []string
	known := map[string]bool{}
	for _, name := range LargeNames {
		p := filepath.Join(dir, name+".onnx")
		known[p] = true
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, name)
			continue
		}
		paths = append(paths, p)
	}
	others, _ := filepath.Glob(filepath.Join(dir, "*.onnx")) // sorted; the pattern is valid
	for _, p := range others {
		if !known[p] {
			paths = append(paths, p)
		}
	}
	switch {
	case len(missing) > 0 && CI():
		t.Fatalf("large models missing under CI: %s in %s; generate them with %s", strings.Join(missing, ", "), dir, LargeHint)
	case len(missing) > 0:
		t.Logf("large models missing, not tested: %s in %s; generate them with %s", strings.Join(missing, ", "), dir, LargeHint)
	}
	return paths
}
