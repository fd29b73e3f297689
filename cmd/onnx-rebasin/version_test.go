package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestVersion checks that -ldflags "-X main.version=..." wins and that
// without it the version comes from the build information (a test binary
// has no module version and no VCS stamp: "devel").
func TestVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	for _, c := range []struct{ set, want string }{{"v1.2.3", "onnx-rebasin v1.2.3\n"}, {"", "onnx-rebasin devel"}} {
		version = c.set
		var stdout, stderr bytes.Buffer
		if err := run([]string{"version"}, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(stdout.String(), c.want) {
			t.Errorf("version %q: printed %q, want %q", c.set, stdout.String(), c.want)
		}
	}
}
