package ortref

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/npy"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

func readNPY(t testing.TB, name string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustArray(t testing.TB) func(*npy.Array, error) *npy.Array {
	return func(a *npy.Array, err error) *npy.Array {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
}

func TestDirAndAvailable(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if !isFile(filepath.Join(dir, "package.json")) {
		t.Errorf("Dir() = %s has no package.json", dir)
	}
	if err := Available(); err != nil {
		if Mandatory() {
			t.Fatalf("Available: %v", err)
		}
		t.Logf("Available: %v", err)
	}
}

// The MLP fixture: ONNX Runtime must agree with numpy's float64 result.
func TestRunMLPMatchesNumpy(t *testing.T) {
	r := Require(t)
	for _, n := range []string{"0", "1"} {
		x := readNPY(t, "mlp_x"+n+".npy")
		want := readNPY(t, "mlp_y"+n+".npy")
		out, err := r.Run(filepath.Join("testdata", "mlp.onnx"), map[string]*npy.Array{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 {
			t.Fatalf("outputs %v, want just y", out)
		}
		if err := CheckClose(out["y"], want, 1e-6, 1e-5); err != nil {
			t.Errorf("batch %s: %v", n, err)
		}
	}
	t.Logf("ONNX Runtime %s", r.Version())
}

func TestRunMultiOutputs(t *testing.T) {
	r := Require(t)
	must := mustArray(t)
	ids := must(npy.FromInt64([]int{3}, []int64{-10, 0, math.MaxInt64 - 10}))
	x := must(npy.FromFloat32([]int{2, 2}, []float32{1.5, -2, 0, 3}))
	model := filepath.Join("testdata", "multi.onnx")
	out, err := r.Run(model, map[string]*npy.Array{"ids": ids, "x": x})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*npy.Array{
		"sum:0/weird": must(npy.FromInt64([]int{3}, []int64{0, 10, math.MaxInt64})),
		"x.twice":     must(npy.FromFloat32([]int{2, 2}, []float32{3, -4, 0, 6})),
		"Flag":        must(npy.FromBool([]int{2, 2}, []bool{true, false, false, true})),
		"flag":        must(npy.FromFloat64([]int{2, 2}, []float64{1.5, -2, 0, 3})),
	}
	if len(out) != len(want) {
		t.Errorf("got outputs %v", out)
	}
	for name, w := range want {
		if !reflect.DeepEqual(out[name], w) {
			t.Errorf("output %q = %v %v, want %v %v", name, out[name], out[name].Data, w, w.Data)
		}
	}
	// Fetching a subset.
	res, err := r.RunRequest(Request{Model: model, Inputs: map[string]*npy.Array{"ids": ids, "x": x}, Outputs: []string{"flag"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || !reflect.DeepEqual(res.Outputs["flag"], want["flag"]) {
		t.Errorf("subset: got %v", res.Outputs)
	}
}

// Every dtype crosses the Go -> node -> ORT -> node -> Go boundary bit for
// bit, including scalars and empty arrays.
func TestIdentityAllDTypes(t *testing.T) {
	r := Require(t)
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := map[string][]int{
		"f16": {5}, "f32": {2, 3}, "f64": {}, "i8": {4}, "i16": {3}, "i32": {0},
		"i64": {2, 1, 2}, "u8": {7}, "u16": {2}, "u32": {3}, "u64": {2}, "b": {2, 2},
	}
	dtypes := map[string]npy.DType{
		"f16": npy.Float16, "f32": npy.Float32, "f64": npy.Float64, "i8": npy.Int8, "i16": npy.Int16,
		"i32": npy.Int32, "i64": npy.Int64, "u8": npy.Uint8, "u16": npy.Uint16, "u32": npy.Uint32,
		"u64": npy.Uint64, "b": npy.Bool,
	}
	inputs := map[string]*npy.Array{}
	for name, shape := range shapes {
		a := mustArray(t)(npy.Zeros(dtypes[name], shape))
		for i := range a.Data {
			a.Data[i] = byte(rng.Uint32())
		}
		if name == "b" {
			for i := range a.Data {
				a.Data[i] &= 1
			}
		}
		if name == "f16" || name == "f32" || name == "f64" {
			// Avoid NaN payloads, which a runtime may canonicalise.
			sz := a.DType.ItemSize()
			for i := 0; i < len(a.Data); i += sz {
				a.Data[i+sz-1] &= 0x3f
			}
		}
		inputs[name] = a
	}
	out, err := r.Run(filepath.Join("testdata", "identity.onnx"), inputs)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range inputs {
		got := out[name+"_out"]
		if !reflect.DeepEqual(got, in) {
			t.Errorf("%s: got %v %v, want %v %v", name, got, got.Data, in, in.Data)
		}
	}
}

// Many requests go through one node process, including from several
// goroutines at once.
func TestBatchManyRequests(t *testing.T) {
	r, err := Start()
	if err != nil {
		skipOrFail(t, err)
	}
	defer r.Close()
	x := readNPY(t, "mlp_x1.npy")
	want := readNPY(t, "mlp_y1.npy")
	model := filepath.Join("testdata", "mlp.onnx")
	start := time.Now()
	const n = 20
	for i := 0; i < n; i++ {
		out, err := r.Run(model, map[string]*npy.Array{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckClose(out["y"], want, 1e-6, 1e-5); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d sequential requests on a tiny model: %v per request", n, time.Since(start)/n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := r.Run(model, map[string]*npy.Array{"x": x})
			if err == nil {
				err = CheckClose(out["y"], want, 1e-6, 1e-5)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if r.starts != 1 {
		t.Errorf("node was started %d times, want 1", r.starts)
	}
}

func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if Available() != nil && !Mandatory() {
		t.Skipf("ONNX Runtime unavailable: %v", err)
	}
	t.Fatal(err)
}

// Bad requests give errors, promptly, and leave the process usable.
func TestErrors(t *testing.T) {
	r, err := Start()
	if err != nil {
		skipOrFail(t, err)
	}
	defer r.Close()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	x := readNPY(t, "mlp_x0.npy")
	x64 := mustArray(t)(npy.FromFloat64(x.Shape, make([]float64, x.Len())))
	mlp := filepath.Join("testdata", "mlp.onnx")
	tests := []struct {
		name   string
		req    Request
		substr string
	}{
		{"missing model", Request{Model: filepath.Join(dir, "nope.onnx"), Inputs: map[string]*npy.Array{"x": x}}, "not a file"},
		{"garbage model", Request{Model: garbage, Inputs: map[string]*npy.Array{"x": x}}, "garbage.onnx"},
		{"missing input", Request{Model: mlp}, "missing inputs"},
		{"unknown input", Request{Model: mlp, Inputs: map[string]*npy.Array{"x": x, "z": x}}, "no input \"z\""},
		{"unknown output", Request{Model: mlp, Inputs: map[string]*npy.Array{"x": x}, Outputs: []string{"q"}}, "no output \"q\""},
		{"wrong dtype", Request{Model: mlp, Inputs: map[string]*npy.Array{"x": x64}}, "mlp.onnx"},
		{"bad array", Request{Model: mlp, Inputs: map[string]*npy.Array{"x": {Shape: []int{9}, DType: npy.Float32}}}, "input \"x\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := r.RunRequest(tc.req)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Errorf("error %q does not contain %q", err, tc.substr)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
			t.Log(err)
		})
	}
	if _, err := r.Run(mlp, map[string]*npy.Array{"x": x}); err != nil {
		t.Fatalf("runner unusable after errors: %v", err)
	}
	if r.starts != 1 {
		t.Errorf("node restarted %d times after request errors", r.starts-1)
	}
}

// A request that outlives the timeout kills node; the next request starts
// a fresh one. Likewise after node dies.
func TestTimeoutAndRestart(t *testing.T) {
	r, err := Start()
	if err != nil {
		skipOrFail(t, err)
	}
	defer r.Close()
	x := readNPY(t, "mlp_x0.npy")
	mlp := filepath.Join("testdata", "mlp.onnx")
	in := map[string]*npy.Array{"x": x}

	r.opts.Timeout = time.Microsecond
	p := r.proc
	_, err = r.Run(mlp, in)
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("got %v, want a timeout error", err)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("timed-out node still running")
	}
	r.opts.Timeout = DefaultTimeout
	if _, err := r.Run(mlp, in); err != nil {
		t.Fatalf("after timeout: %v", err)
	}

	// Kill node behind the Runner's back: the next request gets a new one.
	r.proc.cmd.Process.Kill()
	<-r.proc.done
	if _, err := r.Run(mlp, in); err != nil {
		t.Fatalf("after node was killed between requests: %v", err)
	}
	if r.starts != 3 {
		t.Errorf("starts = %d, want 3", r.starts)
	}

	// node dying during a request is an error for that request. node is
	// stopped before the request is sent, so that it cannot answer before
	// the kill lands (it did at times: a flaky test).
	r.beforeSend = func(p *process) {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	r.afterSend = func(p *process) { p.cmd.Process.Kill() }
	start := time.Now()
	_, err = r.Run(mlp, in)
	r.beforeSend, r.afterSend = nil, nil
	if err == nil || !strings.Contains(err.Error(), "exited unexpectedly") {
		t.Errorf("node killed mid-request: got %v", err)
	} else {
		t.Log(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("dead node noticed after %v", d)
	}
	if _, err := r.Run(mlp, in); err != nil {
		t.Fatalf("after crash: %v", err)
	}
}

func TestClose(t *testing.T) {
	r, err := Start()
	if err != nil {
		skipOrFail(t, err)
	}
	p := r.proc
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("node still running after Close")
	}
	if p.cmd.ProcessState == nil || !p.cmd.ProcessState.Exited() {
		t.Errorf("node did not exit normally: %v", p.cmd.ProcessState)
	}
	r.Close()
	if _, err := r.Run(filepath.Join("testdata", "mlp.onnx"), nil); err == nil {
		t.Error("Run after Close succeeded")
	}
}

// fakeTB records Skipf and Fatalf, ending the calling goroutine as the real
// ones do.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func callRequire(tb *fakeTB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Require(tb)
	}()
	<-done
}

func TestRequireSkipsOrFails(t *testing.T) {
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "run.js"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvDir, empty) // run.js but no node_modules
	if err := Available(); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("Available with empty dir: %v", err)
	}

	t.Setenv("CI", "")
	t.Setenv(EnvRequire, "")
	tb := &fakeTB{TB: t}
	callRequire(tb)
	if tb.failed != "" || !strings.Contains(tb.skipped, InstallHint) {
		t.Errorf("locally: skipped=%q failed=%q, want a skip naming %q", tb.skipped, tb.failed, InstallHint)
	}

	for _, env := range [][2]string{{"CI", "true"}, {EnvRequire, "1"}} {
		t.Setenv(env[0], env[1])
		tb := &fakeTB{TB: t}
		callRequire(tb)
		if tb.skipped != "" || !strings.Contains(tb.failed, InstallHint) {
			t.Errorf("%s=%s: skipped=%q failed=%q, want a failure", env[0], env[1], tb.skipped, tb.failed)
		}
		t.Setenv(env[0], "")
	}
	t.Setenv("CI", "false")
	if Mandatory() {
		t.Error("CI=false counts as mandatory")
	}
}

func randomMLP(rng *rand.Rand, sizes ...int) []denseLayer {
	var layers []denseLayer
	for i := 0; i+1 < len(sizes); i++ {
		l := denseLayer{in: sizes[i], out: sizes[i+1], relu: i+2 < len(sizes)}
		scale := 1 / math.Sqrt(float64(l.in))
		l.w = make([]float32, l.in*l.out)
		for j := range l.w {
			l.w[j] = float32(rng.NormFloat64() * scale)
		}
		l.b = make([]float32, l.out)
		for j := range l.b {
			l.b[j] = float32(rng.NormFloat64() * 0.1)
		}
		layers = append(layers, l)
	}
	return layers
}

// A ~3 MB model built here, checked against a float64 forward pass in Go,
// and timed.
func TestLargeModelTiming(t *testing.T) {
	r := Require(t)
	rng := rand.New(rand.NewPCG(3, 4))
	layers := randomMLP(rng, 512, 512, 512, 512)
	model := filepath.Join(t.TempDir(), "mlp3.onnx")
	data := mlpModel(layers)
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const batch = 8
	x := make([]float32, batch*512)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	want := mlpForward(layers, x, batch)
	in := map[string]*npy.Array{"x": mustArray(t)(npy.FromFloat32([]int{batch, 512}, x))}
	for i := 0; i < 3; i++ {
		res, err := r.RunRequest(Request{Model: model, Inputs: in})
		if err != nil {
			t.Fatal(err)
		}
		got, err := res.Outputs["y"].Float32()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := AllClose(got, want, 1e-4, 1e-4); !ok {
			t.Fatal(d)
		} else if i == 0 {
			t.Log(d)
		}
		tm := res.Timing
		t.Logf("%.1f MB model, batch %d: load %v, run %v, node I/O %v, total %v",
			float64(len(data))/1e6, batch, tm.Load, tm.Run, tm.IO, tm.Total)
	}
	r.mu.Lock()
	pid := r.proc.cmd.Process.Pid
	r.mu.Unlock()
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmRSS") || strings.HasPrefix(line, "VmHWM") {
				t.Logf("node %s", strings.Join(strings.Fields(line), " "))
			}
		}
	}
}

func BenchmarkRunLargeModel(b *testing.B) {
	r := Require(b)
	rng := rand.New(rand.NewPCG(3, 4))
	layers := randomMLP(rng, 512, 512, 512, 512)
	model := filepath.Join(b.TempDir(), "mlp3.onnx")
	if err := os.WriteFile(model, mlpModel(layers), 0o644); err != nil {
		b.Fatal(err)
	}
	in := map[string]*npy.Array{"x": mustArray(b)(npy.Zeros(npy.Float32, []int{8, 512}))}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Run(model, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		r, err := Start()
		if err != nil {
			b.Skip(err)
		}
		r.Close()
	}
}

func TestAllClose(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		got, want  []float32
		atol, rtol float64
		ok         bool
		worst      int
		bad        int
	}{
		{[]float32{1, 2, 3}, []float32{1, 2, 3}, 0, 0, true, 0, 0},
		{[]float32{1, 2.1, 3}, []float32{1, 2, 3}, 0.2, 0, true, 1, 0},
		{[]float32{1, 2.5, 3.2}, []float32{1, 2, 3}, 0.1, 0, false, 1, 2},
		{[]float32{100, 1.05}, []float32{101, 1}, 0, 0.01, false, 1, 1}, // rtol scales with |want|
		{[]float32{nan, 1}, []float32{nan, 1}, 0, 0, true, 1, 0},
		{[]float32{nan, 1}, []float32{0, 1}, 1, 1, false, 0, 1},
		{[]float32{inf, -inf}, []float32{inf, -inf}, 0, 0, true, 0, 0},
		{[]float32{inf}, []float32{-inf}, 1, 1, false, 0, 1},
		{[]float32{1e30}, []float32{inf}, 1, 1, false, 0, 1},
		{nil, nil, 0, 0, true, -1, 0},
		{[]float32{1}, []float32{1, 2}, 0, 0, false, -1, 0},
	}
	for i, tc := range tests {
		d, ok := AllClose(tc.got, tc.want, tc.atol, tc.rtol)
		if ok != tc.ok || d.Worst != tc.worst || d.Bad != tc.bad {
			t.Errorf("case %d: ok=%v worst=%d bad=%d, want %v %d %d (%s)", i, ok, d.Worst, d.Bad, tc.ok, tc.worst, tc.bad, d)
		}
		if d.String() == "" {
			t.Errorf("case %d: empty String", i)
		}
	}
	d, _ := AllClose([]float32{1, 5}, []float32{1, 4}, 0, 0)
	if d.MaxAbsErr != 1 || !strings.Contains(d.String(), "worst [1] got 5 want 4") {
		t.Errorf("got %+v: %s", d, d)
	}
}

func TestCheckClose(t *testing.T) {
	must := mustArray(t)
	a := must(npy.FromFloat32([]int{2}, []float32{1, 2}))
	b := must(npy.FromFloat64([]int{2}, []float64{1, 2.0001}))
	if err := CheckClose(a, b, 1e-3, 0); err != nil {
		t.Error(err)
	}
	if err := CheckClose(a, b, 0, 0); err == nil {
		t.Error("difference not found")
	}
	c := must(npy.FromFloat32([]int{1, 2}, []float32{1, 2}))
	if err := CheckClose(a, c, 1, 1); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("shape mismatch: %v", err)
	}
	i := must(npy.FromInt64([]int{}, []int64{1 << 60}))
	j := must(npy.FromInt64(nil, []int64{1<<60 + 1}))
	if err := CheckClose(i, j, 0, 0); err != nil {
		t.Logf("int64 beyond 2^53 compares through float64: %v", err)
	}
}

func TestCompareModels(t *testing.T) {
	r := Require(t)
	rng := rand.New(rand.NewPCG(5, 6))
	layers := randomMLP(rng, 6, 5, 3)
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.onnx")
	if err := os.WriteFile(orig, mlpModel(layers), 0o644); err != nil {
		t.Fatal(err)
	}

	// Permute the hidden units: same function.
	perm := []int{3, 0, 4, 2, 1}
	p := []denseLayer{layers[0], layers[1]}
	p[0].w, p[0].b = make([]float32, 6*5), make([]float32, 5)
	p[1].w = make([]float32, 5*3)
	for newJ, oldJ := range perm {
		p[0].b[newJ] = layers[0].b[oldJ]
		for k := 0; k < 6; k++ {
			p[0].w[k*5+newJ] = layers[0].w[k*5+oldJ]
		}
		for m := 0; m < 3; m++ {
			p[1].w[newJ*3+m] = layers[1].w[oldJ*3+m]
		}
	}
	permuted := filepath.Join(dir, "permuted.onnx")
	if err := os.WriteFile(permuted, mlpModel(p), 0o644); err != nil {
		t.Fatal(err)
	}

	// Break it: permute only the first layer.
	broken := []denseLayer{p[0], layers[1]}
	brokenPath := filepath.Join(dir, "broken.onnx")
	if err := os.WriteFile(brokenPath, mlpModel(broken), 0o644); err != nil {
		t.Fatal(err)
	}

	x := make([]float32, 4*6)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	in := map[string]*npy.Array{"x": mustArray(t)(npy.FromFloat32([]int{4, 6}, x))}
	if err := r.CompareModels(orig, permuted, in, 1e-5, 1e-5); err != nil {
		t.Errorf("permuted model differs: %v", err)
	}
	err := r.CompareModels(orig, brokenPath, in, 1e-5, 1e-5)
	if err == nil {
		t.Error("broken model not detected")
	} else {
		t.Log(err)
	}
}
