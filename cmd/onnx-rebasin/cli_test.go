package main

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// badCall is a command line that must fail before doing any work.
type badCall struct {
	class string // what it probes (issue 15's classes 3, 6, 9; the CLI contract)
	args  string // space-separated; $D is the test folder
	code  int    // 2 usage, 1 failure
	msg   string // regexp the one-line message must match
}

var badCalls = []badCall{
	// 3: every path a command reads is protected like the models; outputs differ.
	{"3 report over input", "align a.onnx b.onnx -o out.onnx --report a.onnx", 2, `--report a.onnx would overwrite the input a.onnx \(model\)`},
	{"3 report equal to -o", "align a.onnx b.onnx -o out.onnx --report out.onnx", 2, `-o out.onnx and --report out.onnx are the same file`},
	{"3 report equal to -o, other spelling", "align a.onnx b.onnx -o out.onnx --report ./out.onnx", 2, `same file`},
	{"3 -o over --reset-bn data", "merge a.onnx b.onnx -o x.npy --reset-bn x.npy", 2, `-o x.npy would overwrite the input x.npy \(--reset-bn\)`},
	{"3 -o over --repair data", "merge a.onnx b.onnx -o x.npy --repair x.npy", 2, `would overwrite the input x.npy \(--repair\)`},
	{"3 -o over --data", "align a.onnx b.onnx --method activation --data x.npy -o x.npy", 2, `would overwrite the input x.npy \(--data\)`},
	{"3 -o over --perms", "permute a.onnx --perms r.json -o r.json", 2, `would overwrite the input r.json \(--perms\)`},
	{"3 -o over --verify-data", "permute a.onnx --verify --verify-data x.npy -o x.npy", 2, `would overwrite the input x.npy`},
	{"3 -o over a model", "merge a.onnx b.onnx -o b.onnx", 2, `would overwrite the input b.onnx \(model\)`},
	{"3 -o a symlink to a model", "align a.onnx b.onnx -o link.onnx", 2, `would overwrite the input a.onnx`},
	{"3 -o a hard link to a model", "align a.onnx b.onnx -o hard.onnx", 2, `would overwrite the input a.onnx`},
	{"3 interp step over a model", "interp a.onnx s_1.onnx -o s --steps 3", 2, `-o s_1.onnx would overwrite the input s_1.onnx`},
	{"3 interp .onnx prefix over a model", "interp a.onnx s_1.onnx -o s.onnx --steps 2", 2, `would overwrite the input s_1.onnx`},
	{"3 barrier plot over labels", "barrier a.onnx b.onnx --data x.npy --labels y.png --plot y.png", 2, `--plot y.png would overwrite the input y.png \(--labels\)`},

	// 6: values that gave a wrong result silently.
	{"6 negative lambda", "merge a.onnx b.onnx -o out.onnx --lambda -0.5", 2, `--lambda must be in \[0, 1\], got -0.5`},
	{"6 NaN lambda", "merge a.onnx b.onnx -o out.onnx --lambda NaN", 2, `--lambda must be in \[0, 1\], got NaN`},
	{"6 -Inf lambda", "merge a.onnx b.onnx -o out.onnx --lambda -Inf", 2, `--lambda must be in \[0, 1\]`},
	{"6 lambda above 1", "merge a.onnx b.onnx -o out.onnx --lambda 1.5", 2, `--lambda must be in \[0, 1\]`},
	{"6 lambda with three models", "merge a.onnx b.onnx s_1.onnx -o out.onnx --lambda 0.3", 2, `--lambda needs exactly two models`},
	{"6 weights overflow", "merge a.onnx b.onnx -o out.onnx --weights 1e308,1e308", 2, `--weights: the sum of 1e308,1e308 overflows`},
	{"6 NaN weight", "merge a.onnx b.onnx -o out.onnx --weights NaN,1", 2, `--weights: "NaN" is not a finite non-negative number`},
	{"6 infinite weight", "merge a.onnx b.onnx -o out.onnx --weights 1,Inf", 2, `not a finite non-negative number`},
	{"6 zero weights", "merge a.onnx b.onnx -o out.onnx --weights 0,0", 2, `the weights sum to zero`},
	{"6 align max-iter 0", "align a.onnx b.onnx -o out.onnx --max-iter 0", 2, `--max-iter must be at least 1, got 0`},
	{"6 merge max-iter 0", "merge a.onnx b.onnx -o out.onnx --max-iter 0", 2, `--max-iter must be at least 1`},
	{"6 interp max-iter 0", "interp a.onnx b.onnx -o p --max-iter 0", 2, `--max-iter must be at least 1`},
	{"6 align negative restarts", "align a.onnx b.onnx -o out.onnx --restarts -1", 2, `--restarts must be between 0 and 1000, got -1`},
	{"6 merge negative restarts", "merge a.onnx b.onnx -o out.onnx --restarts -1", 2, `--restarts must be between 0 and 1000`},
	{"6 align restarts with activation", "align a.onnx b.onnx -o out.onnx --method activation --data x.npy --restarts 2", 2, `--restarts repeats weight matching: it needs --method weight or hybrid, not activation`},
	{"6 merge restarts with no-align", "merge a.onnx b.onnx -o out.onnx --no-align --restarts 1", 2, `--restarts with --no-align: nothing is aligned`},
	{"6 interp restarts with no-align", "interp a.onnx b.onnx -o p --no-align --restarts 1", 2, `--restarts with --no-align`},
	{"6 interp restarts too many", "interp a.onnx b.onnx -o p --restarts 1001", 2, `--restarts must be between 0 and 1000, got 1001`},
	{"6 align unknown start", "align a.onnx b.onnx -o out.onnx --start random", 2, `unknown --start "random" \(auto, signature, identity\)`},
	{"6 align start with hybrid", "align a.onnx b.onnx -o out.onnx --method hybrid --data x.npy --start identity", 2, `--start is for --method weight: with --method hybrid weight matching does not start on its own`},
	{"6 merge start with no-align", "merge a.onnx b.onnx -o out.onnx --no-align --start identity", 2, `--start with --no-align: nothing is aligned`},
	{"6 align signature start with activation", "align a.onnx b.onnx -o out.onnx --method activation --data x.npy --start signature", 2, `--start is for --method weight: with --method activation`},
	{"6 merge auto start with activation", "merge a.onnx b.onnx -o out.onnx --method activation --data x.npy --start auto", 2, `--start is for --method weight: with --method activation`},
	{"6 interp start with no-align", "interp a.onnx b.onnx -o p --no-align --start identity", 2, `--start with --no-align`},
	{"6 barrier start with activation", "barrier a.onnx b.onnx --data x.npy --labels y.npy --method activation --start identity", 2, `--start is for --method weight`},
	{"6 barrier restarts with activation", "barrier a.onnx b.onnx --data x.npy --labels y.npy --method activation --restarts 1", 2, `--restarts repeats weight matching`},
	{"6 unknown method", "align a.onnx b.onnx -o out.onnx --method bogus", 2, `unknown --method "bogus" \(weight, activation, hybrid\)`},
	{"6 unknown method with data", "align a.onnx b.onnx -o out.onnx --method bogus --data x.npy", 2, `unknown --method "bogus"`},
	{"6 barrier unknown method", "barrier a.onnx b.onnx --data x.npy --labels y.npy --method bogus", 2, `unknown --method "bogus"`},
	{"6 NaN in --reset-bn data", "merge a.onnx b.onnx -o out.onnx --reset-bn nan.npy", 1, `^nan.npy: 3 samples with NaN or infinite values \(the first is sample 0\)$`},
	{"6 NaN in --repair data", "merge a.onnx b.onnx -o out.onnx --repair nan.npy", 1, `^nan.npy: 3 samples with NaN or infinite values`},
	{"6 NaN in activation data", "align a.onnx b.onnx -o out.onnx --method activation --data nan.npy", 1, `^nan.npy: 3 samples with NaN`},
	{"6 NaN in barrier test data", "barrier a.onnx b.onnx --data nan.npy --labels y.npy", 1, `^nan.npy: 3 samples with NaN`},
	{"6 NaN weights, no-align merge", "merge --no-align a.onnx nanw.onnx -o out.onnx", 1, `^cannot merge: nanw.onnx: weight \S+ has NaN values$`},
	{"6 NaN weights, merge", "merge nanw.onnx b.onnx -o out.onnx", 1, `nanw.onnx: weight \S+ has NaN values`},
	{"6 infinite weights, align", "align a.onnx infw.onnx -o out.onnx", 1, `^cannot align: infw.onnx: weight \S+ has infinite values$`},
	{"6 NaN weights, interp", "interp a.onnx nanw.onnx -o p --steps 2 --no-align", 1, `nanw.onnx: weight \S+ has NaN`},
	{"6 eval on all-NaN data", "eval a.onnx --data allnan.npy", 1, `^allnan.npy: every sample has NaN or infinite values$`},

	// 9: paths and flags validated before the work starts.
	{"9 -o is a directory", "align a.onnx b.onnx -o sub", 2, `-o sub: is a directory; give a file name`},
	{"9 -o in a missing folder", "align a.onnx b.onnx -o nodir/out.onnx", 2, `-o nodir/out.onnx: folder nodir does not exist`},
	{"9 --report is a directory", "align a.onnx b.onnx -o out.onnx --report sub", 2, `--report sub: is a directory`},
	{"9 merge -o is a directory", "merge a.onnx b.onnx -o sub.onnx", 2, `-o sub.onnx: is a directory`},
	{"9 interp prefix in a missing folder", "interp a.onnx b.onnx -o nodir/p", 2, `folder nodir does not exist`},
	{"9 barrier plot in a missing folder", "barrier a.onnx b.onnx --data x.npy --labels y.npy --plot nodir/p.png", 2, `folder nodir does not exist`},
	{"9 bad align --batch", "align a.onnx b.onnx -o out.onnx --method activation --data x.npy --batch 0", 2, `--batch must be at least 1, got 0`},
	{"9 bad merge --batch", "merge a.onnx b.onnx -o out.onnx --reset-bn x.npy --batch -3", 2, `--batch must be at least 1, got -3`},
	{"9 bad eval --batch", "eval a.onnx --data x.npy --batch 0", 2, `--batch must be at least 1`},
	{"9 bad barrier --batch", "barrier a.onnx b.onnx --data x.npy --labels y.npy --batch 0", 2, `--batch must be at least 1`},
	{"9 bad interp --steps", "interp a.onnx b.onnx -o p --steps 1", 2, `--steps must be between 2 and 1001, got 1`},
	{"9 bad barrier --steps", "barrier a.onnx b.onnx --data x.npy --labels y.npy --steps 500", 2, `--steps must be between 2 and 101`},
	{"9 --repair with three models", "merge a.onnx b.onnx s_1.onnx -o out.onnx --repair x.npy", 2, `--repair works on two models, got 3`},
	{"9 missing model", "align a.onnx missing.onnx -o out.onnx", 1, `^missing.onnx: no such file or directory$`},
	{"9 missing --reset-bn data", "merge a.onnx b.onnx -o out.onnx --reset-bn missing.npy", 1, `^missing.npy: no such file or directory$`},
	{"9 missing --labels", "eval a.onnx --data x.npy --labels missing.npy", 1, `^missing.npy: no such file`},
	{"9 model is a directory", "inspect sub", 1, `^sub: is a directory, not a file$`},
	{"9 -o without extension", "permute a.onnx -o out", 2, `-o out: expected a file name such as out.onnx`},

	// The CLI contract: conflicting flags, "--", exit codes of every command.
	{"flags mergemany and no-align", "merge a.onnx b.onnx -o out.onnx --mergemany --no-align", 2, `--mergemany and --no-align exclude each other`},
	{"flags mergemany and ref", "merge a.onnx b.onnx -o out.onnx --mergemany --ref a.onnx", 2, `--mergemany and --ref exclude each other`},
	{"flags all three", "merge a.onnx b.onnx -o out.onnx --mergemany --no-align --ref a.onnx", 2, `--mergemany and --no-align and --ref exclude each other`},
	{"flags lambda and weights", "merge a.onnx b.onnx -o out.onnx --lambda 0.2 --weights 1,2", 2, `--lambda and --weights exclude each other`},
	{"flags --data without a method", "align a.onnx b.onnx -o out.onnx --data x.npy", 2, `--data is for --method activation or hybrid`},
	{"flags -- ends flags", "inspect -- a.onnx --json", 2, `inspect: want 1 argument\(s\), got 2`},
	{"flags unknown flag", "inspect --bogus a.onnx", 2, `^inspect: flag provided but not defined: -bogus \(see onnx-rebasin inspect --help\)$`},
	{"usage inspect", "inspect", 2, `want 1 argument`},
	{"usage groups", "groups a.onnx b.onnx", 2, `want 1 argument`},
	{"usage permute", "permute a.onnx", 2, `missing -o`},
	{"usage align", "align a.onnx -o out.onnx", 2, `want 2 argument`},
	{"usage merge", "merge a.onnx -o out.onnx", 2, `want at least 2 argument`},
	{"usage interp", "interp a.onnx b.onnx", 2, `missing -o`},
	{"usage barrier", "barrier a.onnx b.onnx", 2, `--data and --labels are required`},
	{"usage eval", "eval a.onnx --batch x", 2, `invalid value "x" for flag -batch`},
	{"usage version", "version extra", 2, `want 0 argument`},
	{"usage unknown command", "frobnicate", 2, `^unknown command "frobnicate" \(see onnx-rebasin help\)$`},
	{"failure inspect", "inspect bad.onnx", 1, `^bad.onnx: not an ONNX model`},
	{"failure groups", "groups bad.onnx", 1, `^bad.onnx: not an ONNX model`},
	{"failure permute", "permute bad.onnx -o out.onnx", 1, `^bad.onnx: not an ONNX model`},
	{"failure align", "align a.onnx cnn.onnx -o out.onnx", 1, `^cannot align: models differ`},
	{"failure merge", "merge a.onnx bad.onnx -o out.onnx", 1, `^bad.onnx: not an ONNX model`},
	{"failure interp", "interp a.onnx cnn.onnx -o p", 1, `^cannot interpolate: models differ`},
	{"failure barrier", "barrier a.onnx bad.onnx --data x.npy --labels y.npy", 1, `^cannot align: bad.onnx: not an ONNX model`},
	{"failure eval", "eval bad.onnx --data x.npy", 1, `^bad.onnx: not an ONNX model`},
}

// TestBadCalls runs each bad call in process in a folder of inputs and
// checks the exit status, that the message is one line and printed once
// (nothing else on stderr), that no file appeared and that every input is
// byte-identical afterwards.
func TestBadCalls(t *testing.T) {
	src := t.TempDir()
	makeInputs(t, src)
	for _, bc := range badCalls {
		t.Run(bc.class, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			// Relative paths, as users type them (and as messages show them).
			t.Chdir(dir)
			before := snapshot(t, dir)
			var stdout, stderr bytes.Buffer
			err := run(strings.Fields(bc.args), &stdout, &stderr)
			if code := exitCode(err); code != bc.code {
				t.Fatalf("exit status %d, want %d (error: %v)", code, bc.code, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message has several lines: %q", msg)
			}
			if !regexp.MustCompile(bc.msg).MatchString(msg) {
				t.Errorf("message %q does not match %q", msg, bc.msg)
			}
			if stderr.Len() > 0 || stdout.Len() > 0 {
				t.Errorf("printed besides the message: stdout %q, stderr %q", stdout.String(), stderr.String())
			}
			after := snapshot(t, dir)
			for name, sum := range after {
				if b, ok := before[name]; !ok {
					t.Errorf("new file %s", name)
				} else if b != sum {
					t.Errorf("%s changed", name)
				}
			}
			for name := range before {
				if _, ok := after[name]; !ok {
					t.Errorf("%s was removed", name)
				}
			}
		})
	}
}

// makeInputs fills dir with the inputs the bad calls name.
func makeInputs(t *testing.T, dir string) {
	t.Helper()
	cp := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cp(testModels+"mlp32_s0.onnx", "a.onnx")
	cp(testModels+"mlp32_s1.onnx", "b.onnx")
	cp(testModels+"mlp32_s1.onnx", "s_1.onnx")
	cp(testModels+"cnn_bn_s0.onnx", "cnn.onnx")
	// The first 50 test samples: enough to start every command.
	head := func(from, to string) {
		arr, err := npy.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		per := len(arr.Data) / arr.Shape[0]
		small, err := npy.New(arr.DType, append([]int{50}, arr.Shape[1:]...), arr.Data[:50*per])
		if err != nil {
			t.Fatal(err)
		}
		if err := npy.WriteFile(filepath.Join(dir, to), small); err != nil {
			t.Fatal(err)
		}
	}
	head(testModels+"fashion_test_x.npy", "x.npy")
	head(testModels+"fashion_test_y.npy", "y.npy")
	head(testModels+"fashion_test_y.npy", "y.png") // a read file whose name a plot could take
	writeNonFinite(t, filepath.Join(dir, "x.npy"), filepath.Join(dir, "nan.npy"), 3)
	allNaN := make([]float32, 2*28*28)
	for i := range allNaN {
		allNaN[i] = float32(math.NaN())
	}
	arr, err := npy.FromFloat32([]int{2, 1, 28, 28}, allNaN)
	if err != nil {
		t.Fatal(err)
	}
	if err := npy.WriteFile(filepath.Join(dir, "allnan.npy"), arr); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.onnx"), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r.json"), []byte(`{"perms": [[0]]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"sub", "sub.onnx"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Models with one NaN and one infinite weight.
	writeWithWeight(t, testModels+"mlp32_s1.onnx", filepath.Join(dir, "nanw.onnx"), float32(math.NaN()))
	writeWithWeight(t, testModels+"mlp32_s1.onnx", filepath.Join(dir, "infw.onnx"), float32(math.Inf(1)))
}

// writeWithWeight writes the model from with one element of its first
// weight (in name order) set to v.
func writeWithWeight(t *testing.T, from, to string, v float32) {
	t.Helper()
	m, err := onnx.Load(from)
	if err != nil {
		t.Fatal(err)
	}
	w := m.Weights()
	tensor := w[sortedKeys(w)[0]]
	x, err := m.Float32s(tensor)
	if err != nil {
		t.Fatal(err)
	}
	x[len(x)/2] = v
	if err := m.SetFloat32s(tensor, x); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(to); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files and folders of src into dst and
// recreates the links the bad calls need (link.onnx -> a.onnx, hard.onnx).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := os.Mkdir(filepath.Join(dst, e.Name()), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.onnx", filepath.Join(dst, "link.onnx")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dst, "a.onnx"), filepath.Join(dst, "hard.onnx")); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every file under dir (hidden ones too) to its SHA-256,
// and every folder to zero.
func snapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	files := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			files[rel+"/"] = [32]byte{}
			return nil
		}
		if !d.Type().IsRegular() {
			files[rel+"@"] = [32]byte{} // a link or FIFO: never read (it may be /dev/zero)
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[rel] = sha256.Sum256(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
