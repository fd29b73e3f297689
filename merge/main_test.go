package merge

import (
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }
