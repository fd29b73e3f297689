package infer

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// The ONNX backend node tests as packaged by Debian (libonnx-testdata, ONNX
// 1.12: opsets up to 17).
const nodeTestDir = "/usr/share/libonnx-testdata/data/node"

// knownUnsupported lists node tests that use only implemented operators but
// exercise something the interpreter deliberately does not support. A test
// matching pattern must fail with an error matching errRE (so it fails for
// the stated reason), and a passing test matching an entry fails
// TestNodeConformance, so the list cannot go stale silently.
var knownUnsupported = []struct{ pattern, errRE, reason string }{
	// Element types: tensors are float32, int64 or bool only.
	{`^test_(add|sub|mul|div)_uint8$|^test_maxpool_2d_uint8$`, `type UINT8`, "uint8 tensors"},
	{`^test_clip_default_int8_`, `type INT8`, "int8 tensors"},
	{`^test_(equal|equal_bcast|edge_pad|reflect_pad|range_int32_type_negative_delta|constantofshape_int_zeros|constantofshape_int_shape_zero)$|^test_(hann|hamming|blackman)window.*_expanded$|^test_pow_types_(int32_|float32_int32)`,
		`type INT32`, "int32 tensors (Pad's edge and reflect modes are covered by unit tests instead)"},
	{`^test_pow_types_float32_uint(32|64)$`, `type UINT(32|64)`, "uint32/uint64 tensors"},
	{`^test_(max|min)_(float16|float64|int8|int16|int32|uint8|uint16|uint32|uint64)$|^test_mod_(broadcast|mixed_sign_(float16|float64|int8|int16|int32)|uint(8|16|32|64))$`,
		`type (FLOAT16|DOUBLE|U?INT(8|16|32|64))`, "element types other than float32/int64"},
	{`^test_cast_|^test_castlike_.*_expanded$`, `(cast to|type) (DOUBLE|FLOAT16|BFLOAT16|STRING)`, "DOUBLE, FLOAT16, BFLOAT16 and STRING tensors"},
	{`^test_reduce_log_sum_exp_`, `type DOUBLE`, "DOUBLE tensors"},
	{`^test_identity_(opt|sequence)$`, `not a tensor type`, "optional and sequence values"},
	// Operator variants.
	{`^test_maxpool_with_argmax_`, `Indices output`, "MaxPool's Indices output"},
	{`^test_training_dropout(_default|_mask|_default_mask)?$`, `random`, "training-mode dropout is random (numpy's generator)"},
}

// conformancePassFile pins the node tests that pass: each must keep passing
// (an operator that drops out of the registry, or a regression, fails the
// test rather than moving it to "skipped"). Rewrite it with
// go test ./infer -run TestNodeConformance -update-conformance.
const conformancePassFile = "testdata/conformance_pass.txt"

var updateConformance = flag.Bool("update-conformance", false, "rewrite "+conformancePassFile+" with the node tests that pass")

// TestNodeConformance runs every backend node test whose operators are all
// implemented and compares with the expected outputs (rtol 1e-3, atol 1e-5,
// as onnx's backend tests do for float32).
func TestNodeConformance(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(nodeTestDir, "test_*"))
	if len(dirs) == 0 {
		testreq.Missing(t, "no ONNX node tests in %s; install them with: apt-get install libonnx-testdata", nodeTestDir)
	}
	pinned, err := os.ReadFile(conformancePassFile)
	if err != nil && !*updateConformance {
		t.Fatal(err)
	}
	mustPass := map[string]bool{}
	for _, name := range strings.Fields(string(pinned)) {
		mustPass[name] = true
	}
	var passing []string
	// outcome says, for a pinned test that did not pass, what happened.
	outcome := map[string]string{}
	var allow, allowErr []*regexp.Regexp
	for _, k := range knownUnsupported {
		allow = append(allow, regexp.MustCompile(k.pattern))
		allowErr = append(allowErr, regexp.MustCompile(k.errRE))
	}
	// allowed returns the reason a test is known not to pass, and the
	// pattern its error must match.
	allowed := func(name string) (string, *regexp.Regexp) {
		for i, re := range allow {
			if re.MatchString(name) {
				return knownUnsupported[i].reason, allowErr[i]
			}
		}
		return "", nil
	}
	var passed, failed, known, unsupported int
	missingOps := map[string]int{}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		m, err := onnx.Load(filepath.Join(dir, "model.onnx"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			failed++
			outcome[name] = "failed to load"
			continue
		}
		var missing []string
		for _, n := range m.Proto.GetGraph().GetNode() {
			op := n.GetOpType()
			if d := n.GetDomain(); d != "" && d != "ai.onnx" {
				op = d + "." + op
			}
			if !Supported(op) && !slices.Contains(missing, op) {
				missing = append(missing, op)
			}
		}
		if len(missing) > 0 {
			unsupported++
			for _, op := range missing {
				missingOps[op]++
			}
			outcome[name] = "skipped: unsupported " + strings.Join(missing, ", ")
			continue
		}
		err = runNodeTest(m, dir)
		reason, errRE := allowed(name)
		switch {
		case err == nil && reason != "":
			t.Errorf("%s passes but is listed as known-unsupported (%s): update knownUnsupported", name, reason)
			passed++
			passing = append(passing, name)
		case err == nil:
			passed++
			passing = append(passing, name)
		case reason != "" && errRE.MatchString(err.Error()):
			known++
			outcome[name] = "known unsupported: " + reason
			t.Logf("known unsupported: %s (%s): %v", name, reason, firstLine(err))
		default:
			failed++
			outcome[name] = "failed"
			t.Errorf("%s: %v", name, err)
		}
	}
	if *updateConformance {
		if err := os.WriteFile(conformancePassFile, []byte(strings.Join(passing, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d passing node tests to %s", len(passing), conformancePassFile)
	} else {
		var unpinned []string
		for _, name := range passing {
			if !mustPass[name] {
				unpinned = append(unpinned, name)
			}
			delete(mustPass, name)
		}
		for _, name := range slices.Sorted(maps.Keys(mustPass)) {
			what := outcome[name]
			if what == "" {
				what = "not found in " + nodeTestDir
			}
			t.Errorf("%s is pinned as passing in %s but now: %s", name, conformancePassFile, what)
		}
		if len(unpinned) > 0 {
			t.Logf("%d node tests pass that %s does not pin yet (rerun with -update-conformance): %s",
				len(unpinned), conformancePassFile, strings.Join(unpinned, " "))
		}
	}
	t.Logf("ONNX node tests: %d passed, %d failed, %d known-unsupported variants, %d skipped (unsupported ops), of %d",
		passed, failed, known, unsupported, len(dirs))
	var ops []string
	for op, n := range missingOps {
		ops = append(ops, fmt.Sprintf("%s(%d)", op, n))
	}
	sort.Strings(ops)
	t.Logf("unsupported ops in skipped tests: %s", strings.Join(ops, " "))
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// runNodeTest runs every test_data_set_* of one node test.
func runNodeTest(m *onnx.Model, dir string) error {
	sess, err := NewSession(m)
	if err != nil {
		return err
	}
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if len(sets) == 0 {
		return errors.New("no test data sets")
	}
	for _, set := range sets {
		inputs := map[string]*Tensor{}
		for i, info := range sess.Inputs() {
			tp, err := readTensorProto(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
			if err != nil {
				return err
			}
			x, err := TensorFromProto(nil, tp)
			if err != nil {
				return err
			}
			inputs[info.Name] = x
		}
		outs, err := sess.Run(inputs)
		if err != nil {
			return err
		}
		for i, info := range sess.Outputs() {
			tp, err := readTensorProto(filepath.Join(set, fmt.Sprintf("output_%d.pb", i)))
			if err != nil {
				return err
			}
			want, err := TensorFromProto(nil, tp)
			if err != nil {
				return err
			}
			if err := compareTensors(outs[info.Name], want, 1e-3, 1e-5); err != nil {
				return fmt.Errorf("%s output %q: %v", filepath.Base(set), info.Name, err)
			}
		}
	}
	return nil
}

func readTensorProto(path string) (*onnxpb.TensorProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tp := &onnxpb.TensorProto{}
	if err := proto.Unmarshal(b, tp); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return tp, nil
}

// compareTensors checks shape, type and values: |got-want| <= atol +
// rtol·|want| for floats (NaN matches NaN), equality otherwise.
func compareTensors(got, want *Tensor, rtol, atol float64) error {
	if got == nil {
		return errors.New("missing")
	}
	if got.DType != want.DType {
		return fmt.Errorf("type %v, want %v", got.DType, want.DType)
	}
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	bad, worst, at := 0, 0.0, -1
	for i := 0; i < want.Len(); i++ {
		ok := true
		switch want.DType {
		case Float32:
			g, w := float64(got.F[i]), float64(want.F[i])
			if math.IsNaN(w) || math.IsNaN(g) {
				ok = math.IsNaN(w) && math.IsNaN(g)
			} else if math.IsInf(w, 0) || math.IsInf(g, 0) {
				ok = g == w
			} else if d := math.Abs(g - w); d > atol+rtol*math.Abs(w) {
				ok = false
				if d > worst {
					worst, at = d, i
				}
			}
		case Int64:
			ok = got.I[i] == want.I[i]
		case Bool:
			ok = got.B[i] == want.B[i]
		}
		if !ok {
			bad++
			if at < 0 {
				at = i
			}
		}
	}
	if bad > 0 {
		var g, w any
		switch want.DType {
		case Float32:
			g, w = got.F[at], want.F[at]
		case Int64:
			g, w = got.I[at], want.I[at]
		default:
			g, w = got.B[at], want.B[at]
		}
		return fmt.Errorf("%d of %d values differ (e.g. at %d: got %v, want %v)", bad, want.Len(), at, g, w)
	}
	return nil
}
