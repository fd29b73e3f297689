package ortref

import (
	"os"
	"strings"
	"sync"
	"testing"
)

var shared struct {
	mu  sync.Mutex
	r   *Runner
	err error
}

// Shared returns a Runner with default options shared by the whole process,
// starting it on first use. A failure to start is remembered and returned
// again. The Runner lives until Shutdown or process exit (node then sees its
// stdin close and exits; on Linux the kernel also kills it).
func Shared() (*Runner, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.r == nil && shared.err == nil {
		shared.r, shared.err = Start()
	}
	return shared.r, shared.err
}

// Shutdown closes the shared Runner, if started. Packages may call it from
// TestMain after m.Run; it is optional.
func Shutdown() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.r != nil {
		shared.r.Close()
		shared.r = nil
	}
	shared.err = nil
}

// Mandatory reports whether the environment requires the reference checks
// to run: CI is set (to anything but "false" or "0"), or
// ONNX_REBASIN_REQUIRE_ORT is "1" or "true".
func Mandatory() bool {
	if v := strings.ToLower(os.Getenv(EnvRequire)); v == "1" || v == "true" {
		return true
	}
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// Require returns the shared Runner for a test. If ONNX Runtime is not
// installed it skips the test, naming the install command, unless
// Mandatory() is true, in which case it fails the test. A Runner that is
// installed but fails to start always fails the test.
func Require(t testing.TB) *Runner {
	t.Helper()
	if err := Available(); err != nil {
		if Mandatory() {
			t.Fatalf("ONNX Runtime reference check is required here (CI or %s=1) but unavailable: %v\ninstall it with: %s", EnvRequire, err, InstallHint)
		}
		t.Skipf("skipping ONNX Runtime reference check: %v\ninstall it with: %s", err, InstallHint)
	}
	r, err := Shared()
	if err != nil {
		t.Fatalf("starting ONNX Runtime reference: %v", err)
	}
	return r
}
