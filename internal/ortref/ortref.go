// Package ortref runs ONNX models in ONNX Runtime, an independent reference
// implementation, so that tests can check that a rewritten model computes
// what the original computed.
//
// ONNX Runtime comes from the npm package onnxruntime-node, installed in the
// module's tools/ortref folder (cd tools/ortref && npm ci --ignore-scripts).
// A Runner drives one long-lived node process running tools/ortref/run.js in
// batch mode: each Run writes the inputs as .npy files, sends one JSON line,
// and reads the outputs back as .npy files, so loading node and ONNX Runtime
// is paid once per Runner rather than once per model.
//
// Tests normally call Require, which returns a Runner shared by the whole
// test binary, skips the test when ONNX Runtime is not installed, and fails
// it instead when the environment says the check must run (CI=true or
// ONNX_REBASIN_REQUIRE_ORT=1).
package ortref

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/npy"
)

// Environment variables read by this package.
const (
	// EnvDir overrides the location of the tools/ortref folder.
	EnvDir = "ONNX_REBASIN_ORTREF_DIR"
	// EnvNode overrides the node executable (default: "node" on PATH).
	EnvNode = "ONNX_REBASIN_NODE"
	// EnvRequire, when "1" or "true", makes Require fail rather than skip
	// when ONNX Runtime is unavailable. CI=true has the same effect.
	EnvRequire = "ONNX_REBASIN_REQUIRE_ORT"
)

// InstallHint is the command that installs the reference runtime, run from
// the module root.
const InstallHint = "cd tools/ortref && npm ci --ignore-scripts"

// DefaultTimeout bounds one request (model load plus inference) unless
// Options.Timeout says otherwise. A request that takes longer kills the node
// process; the next request starts a new one.
const DefaultTimeout = 5 * time.Minute

// Dir returns the tools/ortref folder: $ONNX_REBASIN_ORTREF_DIR if set,
// else the first tools/ortref/run.js found walking up from the working
// directory, else the one beside this package's source in the module.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return "", err
		}
		if !isFile(filepath.Join(abs, "run.js")) {
			return "", fmt.Errorf("ortref: %s=%s has no run.js", EnvDir, d)
		}
		return abs, nil
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; {
			cand := filepath.Join(d, "tools", "ortref")
			if isFile(filepath.Join(cand, "run.js")) {
				return cand, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		cand := filepath.Join(filepath.Dir(file), "..", "..", "tools", "ortref")
		if isFile(filepath.Join(cand, "run.js")) {
			return filepath.Clean(cand), nil
		}
	}
	return "", errors.New("ortref: cannot find tools/ortref/run.js above the working directory (set " + EnvDir + ")")
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// nodePath returns the node executable.
func nodePath() (string, error) {
	if n := os.Getenv(EnvNode); n != "" {
		p, err := exec.LookPath(n)
		if err != nil {
			return "", fmt.Errorf("ortref: %s=%s: %w", EnvNode, n, err)
		}
		return p, nil
	}
	p, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("ortref: node not found on PATH (Debian: apt-get install nodejs): %w", err)
	}
	return p, nil
}

// Available returns nil if node and onnxruntime-node (with a native binding
// for this platform) are installed, and otherwise an error saying what is
// missing. It does not start node.
func Available() error {
	if _, err := nodePath(); err != nil {
		return err
	}
	dir, err := Dir()
	if err != nil {
		return err
	}
	pkg := filepath.Join(dir, "node_modules", "onnxruntime-node")
	if !isFile(filepath.Join(pkg, "package.json")) {
		return fmt.Errorf("ortref: onnxruntime-node is not installed in %s (run: %s)", dir, InstallHint)
	}
	plat, arch := runtime.GOOS, runtime.GOARCH
	if plat == "windows" {
		plat = "win32"
	}
	if arch == "amd64" {
		arch = "x64"
	}
	bindings, _ := filepath.Glob(filepath.Join(pkg, "bin", "napi-v*", plat, arch, "onnxruntime_binding.node"))
	if len(bindings) == 0 {
		return fmt.Errorf("ortref: onnxruntime-node in %s has no native binding for %s/%s", pkg, plat, arch)
	}
	return nil
}

// Options configure a Runner. The zero value is ready to use.
type Options struct {
	// Threads is ONNX Runtime's intra-op thread count; 0 means 1.
	Threads int
	// Optimization is ONNX Runtime's graph optimization level: "disabled"
	// (the default, so the graph is evaluated as written), "basic",
	// "extended" or "all".
	Optimization string
	// Timeout bounds each request, and starting node; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// Runner runs models in a long-lived node process. Its methods may be
// called from several goroutines; requests are served one at a time.
type Runner struct {
	opts Options
	node string
	dir  string

	mu      sync.Mutex
	proc    *process
	seq     int64
	closed  bool
	version string
	starts  int

	beforeSend func(*process) // test hook, called before a request is sent
	afterSend  func(*process) // test hook, called after a request is sent
}

// Timing is how long ONNX Runtime took for one request, as measured in the
// node process, plus the total time seen from Go.
type Timing struct {
	Load  time.Duration // creating the InferenceSession (parsing the model)
	Run   time.Duration // InferenceSession.run
	IO    time.Duration // reading inputs and writing outputs in node
	Total time.Duration // the whole request as seen by Run, including Go's .npy I/O
}

// Request is one inference request.
type Request struct {
	// Model is the path of the .onnx file.
	Model string
	// Inputs maps graph input names to values; every graph input needs one.
	Inputs map[string]*npy.Array
	// Outputs lists the graph outputs to fetch; nil fetches all.
	Outputs []string
}

// Result is the answer to a Request.
type Result struct {
	// Outputs maps graph output names to values.
	Outputs map[string]*npy.Array
	Timing  Timing
}

// Start checks Available and starts a Runner with default options, waiting
// until ONNX Runtime has loaded.
func Start() (*Runner, error) {
	return StartOptions(Options{})
}

// StartOptions is Start with options.
func StartOptions(opts Options) (*Runner, error) {
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	if opts.Optimization == "" {
		opts.Optimization = "disabled"
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if err := Available(); err != nil {
		return nil, err
	}
	node, err := nodePath()
	if err != nil {
		return nil, err
	}
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	r := &Runner{opts: opts, node: node, dir: dir}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.startLocked(); err != nil {
		return nil, err
	}
	return r, nil
}

// Version returns the ONNX Runtime version reported by the node process.
func (r *Runner) Version() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// Run runs the model at modelPath on inputs and returns all its outputs by
// name.
func (r *Runner) Run(modelPath string, inputs map[string]*npy.Array) (map[string]*npy.Array, error) {
	res, err := r.RunRequest(Request{Model: modelPath, Inputs: inputs})
	if err != nil {
		return nil, err
	}
	return res.Outputs, nil
}

// RunRequest runs one request and reports timings as well as outputs.
func (r *Runner) RunRequest(req Request) (*Result, error) {
	start := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("ortref: Runner is closed")
	}
	model, err := filepath.Abs(req.Model)
	if err != nil {
		return nil, err
	}
	if !isFile(model) {
		return nil, fmt.Errorf("ortref: model %s: not a file", req.Model)
	}
	tmp, err := os.MkdirTemp("", "ortref-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	// Input files are named by position: graph names need not be safe file
	// names.
	names := slices.Sorted(maps.Keys(req.Inputs))
	files := make(map[string]string, len(names))
	for i, name := range names {
		p := filepath.Join(tmp, fmt.Sprintf("in%d.npy", i))
		if err := npy.WriteFile(p, req.Inputs[name]); err != nil {
			return nil, fmt.Errorf("ortref: input %q: %w", name, err)
		}
		files[name] = p
	}
	r.seq++
	wire := wireRequest{
		ID:           r.seq,
		Model:        model,
		Inputs:       files,
		OutputsDir:   filepath.Join(tmp, "out"),
		Outputs:      req.Outputs,
		Threads:      r.opts.Threads,
		Optimization: r.opts.Optimization,
	}
	resp, err := r.roundTripLocked(&wire)
	if err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("ortref: %s: %s", req.Model, resp.Error)
	}
	res := &Result{Outputs: make(map[string]*npy.Array, len(resp.Outputs))}
	for name, info := range resp.Outputs {
		a, err := npy.ReadFile(info.Path)
		if err != nil {
			return nil, fmt.Errorf("ortref: output %q: %w", name, err)
		}
		res.Outputs[name] = a
	}
	if t := resp.Timing; t != nil {
		res.Timing = Timing{Load: msDur(t.Load), Run: msDur(t.Run), IO: msDur(t.IO)}
	}
	res.Timing.Total = time.Since(start)
	return res, nil
}

func msDur(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// Close stops the node process. It is safe to call more than once.
func (r *Runner) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.proc != nil {
		r.proc.stop(5 * time.Second)
		r.proc = nil
	}
	return nil
}

type wireRequest struct {
	ID           int64             `json:"id"`
	Model        string            `json:"model"`
	Inputs       map[string]string `json:"inputs"`
	OutputsDir   string            `json:"outputs_dir"`
	Outputs      []string          `json:"outputs,omitempty"`
	Threads      int               `json:"threads"`
	Optimization string            `json:"optimization"`
}

type wireResponse struct {
	ID      *int64 `json:"id"`
	Ready   bool   `json:"ready"`
	Error   string `json:"error"`
	Outputs map[string]struct {
		Path  string `json:"path"`
		Shape []int  `json:"shape"`
		DType string `json:"dtype"`
	} `json:"outputs"`
	Timing *struct {
		Load float64 `json:"load"`
		Run  float64 `json:"run"`
		IO   float64 `json:"io"`
	} `json:"timing_ms"`
	ORT struct {
		Node string `json:"node"`
	} `json:"ort"`
}

// process is one running node.
type process struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte   // stdout lines; closed at EOF
	quit   chan struct{} // closed to stop delivering lines
	done   chan struct{} // closed once the process has been waited for
	stderr *tail
	werr   error
}

// startLocked starts node and waits for its ready line.
func (r *Runner) startLocked() error {
	cmd := exec.Command(r.node, filepath.Join(r.dir, "run.js"), "--batch")
	cmd.Dir = r.dir
	cmd.SysProcAttr = sysProcAttr()
	p := &process{
		cmd:    cmd,
		lines:  make(chan []byte, 16),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		stderr: &tail{max: 16 << 10},
	}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("ortref: starting node: %w", err)
	}
	r.starts++
	go p.readLoop(stdout)
	r.proc = p
	resp, err := r.readResponseLocked(func(w *wireResponse) bool { return w.Ready || w.Error != "" }, "starting node")
	if err != nil {
		return err
	}
	if !resp.Ready {
		r.killLocked()
		return fmt.Errorf("ortref: node failed to load onnxruntime-node: %s", resp.Error)
	}
	r.version = resp.ORT.Node
	return nil
}

func (p *process) readLoop(stdout io.Reader) {
	br := bufio.NewReader(stdout)
	delivering := true
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && delivering {
			select {
			case p.lines <- line:
			case <-p.quit:
				delivering = false
			}
		}
		if err != nil {
			break
		}
	}
	close(p.lines)
	p.werr = p.cmd.Wait()
	close(p.done)
}

// stop ends the process: politely (EOF on stdin) for up to grace, then by
// killing it.
func (p *process) stop(grace time.Duration) {
	close(p.quit)
	_ = p.stdin.Close() // stopping node: EOF is the signal, an error changes nothing
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.cmd.Process.Kill()
	<-p.done
}

func (r *Runner) killLocked() {
	if r.proc == nil {
		return
	}
	p := r.proc
	r.proc = nil
	close(p.quit)
	_ = p.stdin.Close() // stopping node: EOF is the signal, an error changes nothing
	p.cmd.Process.Kill()
	<-p.done
}

// roundTripLocked sends one request, starting node first if needed, and
// waits for the matching response.
func (r *Runner) roundTripLocked(req *wireRequest) (*wireResponse, error) {
	if r.proc != nil {
		select {
		case <-r.proc.done:
			// node died between requests (killed from outside, say):
			// replace it rather than fail a request it never saw.
			r.deadLocked()
		default:
		}
	}
	if r.proc == nil {
		if err := r.startLocked(); err != nil {
			return nil, err
		}
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	line = append(line, '\n')
	if r.beforeSend != nil {
		r.beforeSend(r.proc)
	}
	if _, err := r.proc.stdin.Write(line); err != nil {
		msg := r.deadLocked()
		return nil, fmt.Errorf("ortref: sending request to node: %v%s", err, msg)
	}
	if r.afterSend != nil {
		r.afterSend(r.proc)
	}
	id := req.ID
	return r.readResponseLocked(func(w *wireResponse) bool { return w.ID != nil && *w.ID == id }, req.Model)
}

// readResponseLocked waits for a response line accepted by match, skipping
// any other output, for at most the request timeout.
func (r *Runner) readResponseLocked(match func(*wireResponse) bool, what string) (*wireResponse, error) {
	p := r.proc
	timer := time.NewTimer(r.opts.Timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return nil, fmt.Errorf("ortref: %s: node exited unexpectedly%s", what, r.deadLocked())
			}
			var w wireResponse
			if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")) || json.Unmarshal(line, &w) != nil {
				p.stderr.Write(line) // stray output: keep it for error messages
				continue
			}
			if w.ID == nil && !w.Ready && w.Error != "" {
				// An unattributed error means the request line was
				// unreadable: it is ours.
				return &w, nil
			}
			if match(&w) {
				return &w, nil
			}
		case <-timer.C:
			stderr := p.stderr.String()
			r.killLocked()
			return nil, fmt.Errorf("ortref: %s: no answer from node within %v; node killed%s", what, r.opts.Timeout, stderrSuffix(stderr))
		}
	}
}

// deadLocked waits for an exited process, forgets it and describes how it
// ended.
func (r *Runner) deadLocked() string {
	p := r.proc
	r.proc = nil
	close(p.quit)
	_ = p.stdin.Close() // stopping node: EOF is the signal, an error changes nothing
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	msg := ""
	if p.werr != nil {
		msg = " (" + p.werr.Error() + ")"
	}
	return msg + stderrSuffix(p.stderr.String())
}

func stderrSuffix(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return "; node stderr:\n" + s
}

// tail is an io.Writer keeping the last max bytes written.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
