//go:build linux

// Command inferbench times package infer against ONNX Runtime (CPU, through
// tools/ortref/run.js) on the test models, with the same thread count on
// both sides, and prints markdown tables.
//
//	go run ./bench/infer [-models mlp,cnn_bn] [-batches 1,256] [-threads 1,2]
//	                     [-budget 1s] [-rounds 3] [-opt all,disabled]
//
// For every model, batch and thread count, ours and ONNX Runtime are
// measured alternately -rounds times, so that both see the same machine
// load. One measurement is a warm-up run followed by K timed runs on the same
// input (K chosen once per configuration from our warm-up time and -budget,
// the same K for ONNX Runtime); it yields the median wall time per run and
// the median process CPU time per run (all threads). The tables give the
// median over rounds.
//
// Ours runs with runtime.GOMAXPROCS(threads) and infer.Threads(threads)
// (package simd sizes its GEMM workers from GOMAXPROCS). ONNX Runtime runs
// with intraOpNumThreads = threads, interOpNumThreads = 1, sequential
// execution, and each -opt graph optimization level ("all" is ORT's normal
// mode); its time excludes session creation (run.js's "repeat" field).
//
// -check compares our logits with ONNX Runtime's (max |diff|) as a sanity
// check; -cpuprofile writes a CPU profile of this process (with -opt "",
// of our runs alone).
package main

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/cpuid/v2"

	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "inferbench:", err)
		os.Exit(1)
	}
}

type config struct {
	model   string
	batch   int
	threads int
}

type result struct {
	config
	k        int
	ours     stat
	ort      map[string]stat // by optimization level
	maxDiff  map[string]float64
	oursRuns []stat // per round
}

// stat is one measurement: per-run medians in milliseconds.
type stat struct{ wall, cpu float64 }

func run() error {
	var (
		modelsF  = flag.String("models", "mlp,mlp32,cnn_bn,cnn_fold,resnet,transformer", "test models (testmodels/<name>_s0.onnx)")
		batchesF = flag.String("batches", "1,256", "batch sizes")
		threadsF = flag.String("threads", "1,2", "thread counts")
		optF     = flag.String("opt", "all,disabled", "ONNX Runtime graph optimization levels; empty: ours only")
		budget   = flag.Duration("budget", time.Second, "target time of one measurement (K runs)")
		minK     = flag.Int("mink", 5, "minimum runs per measurement")
		maxK     = flag.Int("maxk", 500, "maximum runs per measurement")
		rounds   = flag.Int("rounds", 3, "alternating rounds of ours / ONNX Runtime")
		root     = flag.String("root", "", "module root (default: found from the working directory)")
		check    = flag.Bool("check", true, "compare our outputs with ONNX Runtime's")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of our runs to this file")
		brk      = flag.Bool("breakdown", false, "print our time per node (ours only, no ONNX Runtime) and exit")
		hash     = flag.Bool("hash", false, "print a SHA-256 of every value our runs compute (to check that a change to infer is bit-identical) and exit")
	)
	flag.Parse()
	if *root == "" {
		r, err := findRoot()
		if err != nil {
			return err
		}
		*root = r
	}
	batches, err := ints(*batchesF)
	if err != nil {
		return err
	}
	threads, err := ints(*threadsF)
	if err != nil {
		return err
	}
	var opts []string
	if *optF != "" {
		opts = strings.Split(*optF, ",")
	}
	models := strings.Split(*modelsF, ",")

	xs, err := npy.ReadFile(filepath.Join(*root, "testmodels", "fashion_test_x.npy"))
	if err != nil {
		return err
	}
	pixels, err := xs.Float32()
	if err != nil {
		return err
	}
	const img = 28 * 28
	tmp, err := os.MkdirTemp("", "inferbench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	inputs := map[int]*infer.Tensor{}
	inFiles := map[int]string{}
	for _, n := range batches {
		if n > len(pixels)/img {
			return fmt.Errorf("batch %d: only %d test images", n, len(pixels)/img)
		}
		shape := []int{n, 1, 28, 28}
		data := pixels[:n*img]
		inputs[n] = infer.NewFloat32(shape, data)
		a, err := npy.FromFloat32(shape, data)
		if err != nil {
			return err
		}
		inFiles[n] = filepath.Join(tmp, fmt.Sprintf("x%d.npy", n))
		if err := npy.WriteFile(inFiles[n], a); err != nil {
			return err
		}
	}

	if *hash {
		return hashValues(*root, models, batches, threads, inputs)
	}
	if *brk {
		return breakdown(*root, models, batches, threads, inputs, *budget, *minK, *maxK)
	}
	var ort *ortProc
	if len(opts) > 0 {
		if ort, err = startORT(*root); err != nil {
			return err
		}
		defer ort.close()
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
		if len(opts) > 0 {
			fmt.Fprintln(os.Stderr, "inferbench: note: use -opt '' with -cpuprofile to profile our runs alone")
		}
	}

	fmt.Printf("# %s, %d CPUs (%s), %s %s, simd path %s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOARCH, simd.Path())
	if ort != nil {
		fmt.Printf("# onnxruntime-node %s (node %s)\n", ort.version, ort.node)
	}
	fmt.Printf("# load before: %s\n", loadavg())

	var results []*result
	for _, name := range models {
		path := filepath.Join(*root, "testmodels", name+"_s0.onnx")
		m, err := onnx.Load(path)
		if err != nil {
			return err
		}
		for _, n := range batches {
			for _, th := range threads {
				res := &result{config: config{name, n, th}, ort: map[string]stat{}, maxDiff: map[string]float64{}}
				prev := runtime.GOMAXPROCS(th)
				sess, err := infer.NewSession(m, infer.Threads(th))
				if err != nil {
					return err
				}
				in := map[string]*infer.Tensor{"input": inputs[n]}
				// Warm-up (fills the buffer pool) and choice of K.
				t0 := time.Now()
				outs, err := sess.Run(in)
				if err != nil {
					return fmt.Errorf("%s: %v", name, err)
				}
				first := time.Since(t0)
				if _, err := sess.Run(in); err != nil {
					return err
				}
				t0 = time.Now()
				if _, err := sess.Run(in); err != nil {
					return err
				}
				one := min(first, time.Since(t0))
				k := int(*budget / max(one, time.Microsecond))
				k = min(max(k, *minK), *maxK)
				res.k = k
				runtime.GOMAXPROCS(prev)
				ortStats := map[string][]stat{}
				for r := 0; r < *rounds; r++ {
					runtime.GOMAXPROCS(th)
					st, err := timeOurs(sess, in, k)
					runtime.GOMAXPROCS(prev)
					if err != nil {
						return err
					}
					res.oursRuns = append(res.oursRuns, st)
					for _, opt := range opts {
						resp, err := ort.run(path, inFiles[n], filepath.Join(tmp, "out"), th, opt, k)
						if err != nil {
							return fmt.Errorf("%s batch %d threads %d %s: %v", name, n, th, opt, err)
						}
						ortStats[opt] = append(ortStats[opt], stat{resp.Timing.Repeat.Median, resp.Timing.Repeat.CPUMedian})
						if *check && r == 0 {
							d, err := maxDiff(outs["logits"], resp)
							if err != nil {
								return fmt.Errorf("%s: %v", name, err)
							}
							res.maxDiff[opt] = d
						}
					}
				}
				res.ours = medianStat(res.oursRuns)
				for opt, s := range ortStats {
					res.ort[opt] = medianStat(s)
				}
				results = append(results, res)
				fmt.Fprintf(os.Stderr, "%-12s batch %3d threads %d K=%-4d ours %9.3f ms", name, n, th, k, res.ours.wall)
				for _, opt := range opts {
					fmt.Fprintf(os.Stderr, "  ORT[%s] %9.3f ms (%.2fx)", opt, res.ort[opt].wall, res.ours.wall/res.ort[opt].wall)
				}
				fmt.Fprintf(os.Stderr, "  load %s\n", loadavg())
			}
		}
	}
	fmt.Printf("# load after: %s\n\n", loadavg())
	printTables(os.Stdout, results, opts, *check)
	return nil
}

// breakdown prints, per model, batch and thread count, our median time per
// node (the time between consecutive OnValue callbacks, so a node's share
// includes the interpreter's bookkeeping around it).
func breakdown(root string, models []string, batches, threads []int, inputs map[int]*infer.Tensor, budget time.Duration, minK, maxK int) error {
	for _, name := range models {
		path := filepath.Join(root, "testmodels", name+"_s0.onnx")
		m, err := onnx.Load(path)
		if err != nil {
			return err
		}
		opOf := map[string]string{}
		for _, nd := range m.Proto.GetGraph().GetNode() {
			for _, o := range nd.GetOutput() {
				opOf[o] = nd.GetOpType()
			}
		}
		for _, n := range batches {
			for _, th := range threads {
				prev := runtime.GOMAXPROCS(th)
				sess, err := infer.NewSession(m, infer.Threads(th))
				if err != nil {
					return err
				}
				in := map[string]*infer.Tensor{"input": inputs[n]}
				var names []string
				shapes := map[string][]int{}
				times := map[string][]float64{}
				var last time.Time
				record := true
				cb := infer.OnValue(func(v string, t *infer.Tensor) {
					now := time.Now()
					if _, ok := shapes[v]; !ok {
						names = append(names, v)
						shapes[v] = slices.Clone(t.Shape)
					}
					if record {
						times[v] = append(times[v], float64(now.Sub(last).Nanoseconds())/1e6)
					}
					last = time.Now()
				})
				record = false
				t0 := time.Now()
				if _, err := sess.Run(in, cb); err != nil {
					return err
				}
				k := min(max(int(budget/max(time.Since(t0), time.Microsecond)), minK), maxK)
				record = true
				var totals []float64
				for i := 0; i < k; i++ {
					last = time.Now()
					t0 := time.Now()
					if _, err := sess.Run(in, cb); err != nil {
						return err
					}
					totals = append(totals, float64(time.Since(t0).Nanoseconds())/1e6)
				}
				runtime.GOMAXPROCS(prev)
				total := median(totals)
				fmt.Printf("\n%s batch %d threads %d: %s ms per run (median of %d)\n\n", name, n, th, ms(total), k)
				fmt.Println("| node output | op | shape | ms | % |")
				fmt.Println("| --- | --- | --- | ---: | ---: |")
				byOp := map[string]float64{}
				var ops []string
				for _, v := range names {
					t := median(times[v])
					fmt.Printf("| %s | %s | %v | %s | %.1f |\n", v, opOf[v], shapes[v], ms(t), 100*t/total)
					if _, ok := byOp[opOf[v]]; !ok {
						ops = append(ops, opOf[v])
					}
					byOp[opOf[v]] += t
				}
				slices.SortFunc(ops, func(a, b string) int { return cmp.Compare(byOp[b], byOp[a]) })
				fmt.Printf("\nby operator:")
				for _, op := range ops {
					fmt.Printf(" %s %s ms (%.0f%%);", op, ms(byOp[op]), 100*byOp[op]/total)
				}
				fmt.Println()
			}
		}
	}
	return nil
}

// hashValues prints, per model, batch and thread count, a SHA-256 of every
// node output (the bits of its elements, in order) and of the outputs.
func hashValues(root string, models []string, batches, threads []int, inputs map[int]*infer.Tensor) error {
	for _, name := range models {
		m, err := onnx.Load(filepath.Join(root, "testmodels", name+"_s0.onnx"))
		if err != nil {
			return err
		}
		for _, n := range batches {
			for _, th := range threads {
				prev := runtime.GOMAXPROCS(th)
				sess, err := infer.NewSession(m, infer.Threads(th))
				if err != nil {
					return err
				}
				in := map[string]*infer.Tensor{"input": inputs[n]}
				for run := 0; run < 2; run++ { // the second run reuses buffers
					all := sha256.New()
					cb := infer.OnValue(func(v string, t *infer.Tensor) {
						h := sha256.New()
						for _, f := range t.F {
							binary.Write(h, binary.LittleEndian, math.Float32bits(f))
						}
						for _, i := range t.I {
							binary.Write(h, binary.LittleEndian, i)
						}
						for _, b := range t.B {
							binary.Write(h, binary.LittleEndian, b)
						}
						sum := h.Sum(nil)
						all.Write(sum)
						if run == 0 {
							fmt.Printf("%s batch %d threads %d %s %x\n", name, n, th, v, sum[:8])
						}
					})
					if _, err := sess.Run(in, cb); err != nil {
						return err
					}
					fmt.Printf("%s batch %d threads %d run %d ALL %x\n", name, n, th, run, all.Sum(nil)[:8])
				}
				runtime.GOMAXPROCS(prev)
			}
		}
	}
	return nil
}

// timeOurs runs sess k times and returns the median wall and process CPU
// milliseconds per run.
func timeOurs(sess *infer.Session, in map[string]*infer.Tensor, k int) (stat, error) {
	wall := make([]float64, k)
	cpu := make([]float64, k)
	for i := 0; i < k; i++ {
		c0 := processCPU()
		t0 := time.Now()
		if _, err := sess.Run(in); err != nil {
			return stat{}, err
		}
		wall[i] = float64(time.Since(t0).Nanoseconds()) / 1e6
		cpu[i] = float64((processCPU() - c0).Nanoseconds()) / 1e6
	}
	return stat{median(wall), median(cpu)}, nil
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // cannot fail for RUSAGE_SELF
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	h := len(s) / 2
	if len(s)%2 == 1 {
		return s[h]
	}
	return (s[h-1] + s[h]) / 2
}

func medianStat(v []stat) stat {
	w := make([]float64, len(v))
	c := make([]float64, len(v))
	for i, s := range v {
		w[i], c[i] = s.wall, s.cpu
	}
	return stat{median(w), median(c)}
}

func maxDiff(ours *infer.Tensor, resp *ortResponse) (float64, error) {
	info, ok := resp.Outputs["logits"]
	if !ok || ours == nil {
		return 0, errors.New("no logits output")
	}
	a, err := npy.ReadFile(info.Path)
	if err != nil {
		return 0, err
	}
	want, err := a.Float32()
	if err != nil {
		return 0, err
	}
	if len(want) != len(ours.F) {
		return 0, fmt.Errorf("logits: ORT has %d values, ours %d", len(want), len(ours.F))
	}
	d := 0.0
	for i, v := range want {
		d = math.Max(d, math.Abs(float64(v)-float64(ours.F[i])))
	}
	return d, nil
}

func printTables(w io.Writer, results []*result, opts []string, check bool) {
	head := "| model | batch | threads | ours ms |"
	sep := "| --- | ---: | ---: | ---: |"
	for _, opt := range opts {
		head += fmt.Sprintf(" ORT ms (%s) | ratio (%s) |", opt, opt)
		sep += " ---: | ---: |"
	}
	fmt.Fprintln(w, "Wall time per run (median), ratio = ours / ORT:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %d | %s |", r.model, r.batch, r.threads, ms(r.ours.wall))
		for _, opt := range opts {
			o := r.ort[opt]
			fmt.Fprintf(w, " %s | %s |", ms(o.wall), ratio(r.ours.wall/o.wall))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Process CPU time per run (median, all threads; ONNX Runtime's idle worker threads spin):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %d | %s |", r.model, r.batch, r.threads, ms(r.ours.cpu))
		for _, opt := range opts {
			o := r.ort[opt]
			fmt.Fprintf(w, " %s | %s |", ms(o.cpu), ratio(r.ours.cpu/o.cpu))
		}
		fmt.Fprintln(w)
	}
	if check && len(opts) > 0 {
		fmt.Fprintln(w)
		fmt.Fprint(w, "Max |ours - ORT| over the logits:")
		for _, r := range results {
			if r.threads != results[0].threads {
				continue
			}
			fmt.Fprintf(w, " %s/%d", r.model, r.batch)
			for _, opt := range opts {
				fmt.Fprintf(w, " %s %.1e", opt, r.maxDiff[opt])
			}
			fmt.Fprint(w, ";")
		}
		fmt.Fprintln(w)
	}
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func ratio(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "×" }

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("bad list %q", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "testmodels", "fashion_test_x.npy")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root with testmodels/ not found; use -root")
		}
		dir = parent
	}
}

// cpuModel returns /proc/cpuinfo's model name and, when it differs, the
// CPUID brand string (virtual machines often show a generic model name).
func cpuModel() string {
	name := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				name = strings.TrimSpace(v)
				break
			}
		}
	}
	if brand := strings.TrimSpace(cpuid.CPU.BrandName); brand != "" && brand != name {
		name += "; CPUID: " + brand
	}
	return name
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// ortProc is a `node run.js --batch` process.
type ortProc struct {
	cmd           *exec.Cmd
	in            io.WriteCloser
	out           *bufio.Scanner
	version, node string
	seq           int
}

type ortResponse struct {
	Ready   bool   `json:"ready"`
	Error   string `json:"error"`
	Node    string `json:"node"`
	Outputs map[string]struct {
		Path string `json:"path"`
	} `json:"outputs"`
	ORT    map[string]any `json:"ort"`
	Timing struct {
		Load   float64 `json:"load"`
		Run    float64 `json:"run"`
		Repeat struct {
			N         int     `json:"n"`
			Median    float64 `json:"median"`
			Min       float64 `json:"min"`
			CPUMedian float64 `json:"cpu_median"`
		} `json:"repeat"`
	} `json:"timing_ms"`
}

func startORT(root string) (*ortProc, error) {
	node := os.Getenv("ONNX_REBASIN_NODE")
	if node == "" {
		node = "node"
	}
	dir := filepath.Join(root, "tools", "ortref")
	cmd := exec.Command(node, filepath.Join(dir, "run.js"), "--batch")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting node (see tools/ortref/README.md): %v", err)
	}
	p := &ortProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.out.Buffer(make([]byte, 1<<20), 1<<20)
	resp, err := p.read()
	if err != nil {
		p.close()
		return nil, err
	}
	if !resp.Ready {
		p.close()
		return nil, fmt.Errorf("onnxruntime-node did not load: %s", resp.Error)
	}
	p.node = resp.Node
	p.version = fmt.Sprint(resp.ORT["common"])
	if v, ok := resp.ORT["node"]; ok && p.version == "<nil>" {
		p.version = fmt.Sprint(v)
	}
	return p, nil
}

func (p *ortProc) read() (*ortResponse, error) {
	if !p.out.Scan() {
		if err := p.out.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("node exited")
	}
	var r ortResponse
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("bad response %q: %v", p.out.Text(), err)
	}
	return &r, nil
}

func (p *ortProc) run(model, input, outDir string, threads int, opt string, repeat int) (*ortResponse, error) {
	p.seq++
	req, err := json.Marshal(map[string]any{
		"id": p.seq, "model": model, "inputs": map[string]string{"input": input},
		"outputs_dir": outDir, "threads": threads, "optimization": opt, "repeat": repeat,
	})
	if err != nil {
		return nil, err
	}
	if _, err := p.in.Write(append(req, '\n')); err != nil {
		return nil, err
	}
	r, err := p.read()
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		return nil, errors.New(r.Error)
	}
	if r.Timing.Repeat.N != repeat {
		return nil, fmt.Errorf("run.js did not repeat the run (old run.js without \"repeat\"?)")
	}
	return r, nil
}

func (p *ortProc) close() {
	_ = p.in.Close() // EOF asks node to exit
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }() // its status does not matter now
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}
