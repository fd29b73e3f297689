package merge

import (
	"os"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
)

// TestMain stops the ONNX Runtime process the tests started.
func TestMain(m *testing.M) {
	code := m.Run()
	ortref.Shutdown()
	os.Exit(code)
}
