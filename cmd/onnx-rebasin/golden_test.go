package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/npy"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the commands' current output")

const testModels = "../../testmodels/"

// volatileKeys hold timings: the golden files have 0 there and the
// comparison ignores their values (not their presence).
var volatileKeys = map[string]bool{"elapsed_s": true, "samples_per_s": true}

// TestJSONGolden pins every JSON output (inspect, groups, align --report,
// eval, barrier) to testdata/golden: the same keys, types and values
// (numbers to a relative 1e-6, timings ignored). go test -run TestJSONGolden
// -update rewrites the files after an intended change; docs/json.md must
// document every key (TestJSONDocumented).
func TestJSONGolden(t *testing.T) {
	for _, tc := range goldenCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.output(t)
			path := filepath.Join("testdata", "golden", tc.name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestJSONGolden -update to create it)", err)
			}
			var g, w any
			if err := decodeJSON(got, &g); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, got)
			}
			if err := decodeJSON(want, &w); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if diff := compareJSON("$", w, g); diff != "" {
				t.Errorf("%s differs from the output: %s\n(after an intended change: go test -run TestJSONGolden -update)", path, diff)
			}
		})
	}
}

type goldenCase struct {
	name   string
	output func(t *testing.T) []byte // normalized JSON
}

func goldenCases(t *testing.T) []goldenCase {
	a, b := testModels+"mlp32_s0.onnx", testModels+"mlp32_s1.onnx"
	x, y := testModels+"fashion_test_x.npy", testModels+"fashion_test_y.npy"
	stdout := func(args ...string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			var out, errOut bytes.Buffer
			if err := run(args, &out, &errOut); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, errOut.String())
			}
			return normalizeJSON(t, out.Bytes(), "")
		}
	}
	return []goldenCase{
		{"inspect", stdout("inspect", "--json", a)},
		{"groups", stdout("groups", "--json", testModels+"cnn_bn_s0.onnx")},
		{"align_report", func(t *testing.T) []byte {
			dir := t.TempDir()
			report := filepath.Join(dir, "r.json")
			var errOut bytes.Buffer
			if err := run([]string{"align", "-q", a, b, "-o", filepath.Join(dir, "out.onnx"), "--seed", "3", "--report", report}, &bytes.Buffer{}, &errOut); err != nil {
				t.Fatalf("%v\n%s", err, errOut.String())
			}
			data, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			return normalizeJSON(t, data, dir)
		}},
		{"eval", stdout("eval", "-q", "--json", a, "--data", x, "--labels", y)},
		{"eval_non_finite", func(t *testing.T) []byte {
			dir := t.TempDir()
			nanData := filepath.Join(dir, "x.npy")
			writeNonFinite(t, x, nanData, 3)
			var out, errOut bytes.Buffer
			if err := run([]string{"eval", "-q", "--json", a, "--data", nanData, "--labels", y}, &out, &errOut); err != nil {
				t.Fatalf("%v\n%s", err, errOut.String())
			}
			return normalizeJSON(t, out.Bytes(), dir)
		}},
		{"barrier", stdout("barrier", "-q", "--json", a, b, "--data", x, "--labels", y, "--steps", "3")},
	}
}

// writeNonFinite copies the .npy data at from to to with NaN, +Inf and
// -Inf put into the first n samples.
func writeNonFinite(t *testing.T, from, to string, n int) {
	t.Helper()
	arr, err := npy.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	v, err := arr.Float32()
	if err != nil {
		t.Fatal(err)
	}
	per := len(v) / arr.Shape[0]
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	for i := range n {
		v[i*per+i%per] = bad[i%len(bad)]
	}
	out, err := npy.FromFloat32(arr.Shape, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(to, out); err != nil {
		t.Fatal(err)
	}
}

// normalizeJSON zeroes timings and writes tmp as $TMP, so that outputs
// compare across runs and machines.
func normalizeJSON(t *testing.T, data []byte, tmp string) []byte {
	t.Helper()
	if tmp != "" {
		q, _ := json.Marshal(tmp)
		data = bytes.ReplaceAll(data, q[1:len(q)-1], []byte("$TMP"))
	}
	for k := range volatileKeys {
		re := regexp.MustCompile(`("` + k + `": )[-+0-9.eE]+`)
		data = re.ReplaceAll(data, []byte("${1}0"))
	}
	return data
}

func decodeJSON(data []byte, v *any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}

// compareJSON returns where want and got differ ("" if they do not):
// objects must have the same keys, arrays the same length, numbers agree to
// a relative 1e-6 (integers exactly), timings are not compared.
func compareJSON(at string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %T, want an object", at, got)
		}
		for _, k := range unionKeys(w, g) {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inW:
				return fmt.Sprintf("%s: unexpected key %q", at, k)
			case !inG:
				return fmt.Sprintf("%s: missing key %q", at, k)
			case volatileKeys[k]:
				continue
			}
			if d := compareJSON(at+"."+k, wv, gv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: got %T, want an array", at, got)
		}
		if len(g) != len(w) {
			return fmt.Sprintf("%s: %d elements, want %d", at, len(g), len(w))
		}
		for i := range w {
			if d := compareJSON(fmt.Sprintf("%s[%d]", at, i), w[i], g[i]); d != "" {
				return d
			}
		}
		return ""
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return fmt.Sprintf("%s: got %v, want the number %v", at, got, w)
		}
		wi, err1 := strconv.ParseInt(string(w), 10, 64)
		gi, err2 := strconv.ParseInt(string(g), 10, 64)
		if err1 == nil && err2 == nil {
			if wi != gi {
				return fmt.Sprintf("%s: %d, want %d", at, gi, wi)
			}
			return ""
		}
		wf, _ := w.Float64()
		gf, _ := g.Float64()
		if math.Abs(wf-gf) > 1e-6*math.Max(math.Abs(wf), 1e-3) {
			return fmt.Sprintf("%s: %v, want %v", at, g, w)
		}
		return ""
	default:
		if want != got {
			return fmt.Sprintf("%s: %#v, want %#v", at, got, want)
		}
		return ""
	}
}

func unionKeys(a, b map[string]any) []string {
	keys := sortedKeys(a)
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// TestJSONDocumented checks that docs/json.md names every key of every
// golden JSON output (as `key`), so the documentation cannot fall behind.
func TestJSONDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files (%v)", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := decodeJSON(data, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, k := range jsonKeys(v, filepath.Base(f) == "inspect.json") {
			if !strings.Contains(string(doc), "`"+k+"`") {
				t.Errorf("docs/json.md does not document the key %q of %s", k, f)
			}
		}
	}
}

// jsonKeys lists the object keys in v, except the keys of the maps keyed by
// data (inspect's opsets and ops).
func jsonKeys(v any, inspect bool) []string {
	seen := map[string]bool{}
	var walk func(v any, parent string)
	walk = func(v any, parent string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if !(inspect && (parent == "opsets" || parent == "ops")) {
					seen[k] = true
				}
				walk(e, k)
			}
		case []any:
			for _, e := range v {
				walk(e, parent)
			}
		}
	}
	walk(v, "")
	return sortedKeys(seen)
}
