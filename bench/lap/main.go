//go:build linux

// Command lapbench times package lap on cost matrices stored as raw
// float64 files, so that the scipy comparison (scipy_bench.py, driven by
// run.sh) solves exactly the same data.
//
//	lapbench gen  -dir D [-n 512,1024] [-kinds uniform,wm] [-seed 1]
//	lapbench time -dir D [-n 512,1024] [-kinds uniform,wm] [-reps 5]
//
// gen writes D/<kind>_<n>.f64 (row-major, little-endian float64; kinds as
// in laptest.Generate). time solves each file -reps times with one reused
// lap.Solver and prints one tab-separated line per file:
//
//	kind n wall_median_ms wall_min_ms cpu_median_ms total
//
// CPU time is the solving thread's own (CLOCK_THREAD_CPUTIME_ID), which other
// processes on a shared machine disturb less than wall time.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "lapbench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: lapbench gen|time -dir D [-n sizes] [-kinds kinds]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", "", "folder of <kind>_<n>.f64 files")
	sizes := fs.String("n", "512,1024,2048,4096", "comma-separated sizes")
	kinds := fs.String("kinds", "uniform,wm", "comma-separated kinds (see laptest.Generate)")
	seed := fs.Uint64("seed", 1, "generator seed (gen)")
	reps := fs.Int("reps", 5, "timed solves per matrix (time)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	var ns []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("bad size %q", f)
		}
		ns = append(ns, n)
	}
	ks := strings.Split(*kinds, ",")
	for _, k := range ks {
		if !slices.Contains(laptest.Kinds, k) {
			return fmt.Errorf("unknown kind %q (have %v)", k, laptest.Kinds)
		}
	}
	switch args[0] {
	case "gen":
		for _, k := range ks {
			for _, n := range ns {
				path := filepath.Join(*dir, fmt.Sprintf("%s_%d.f64", k, n))
				if err := laptest.WriteMatrix(path, laptest.Generate(k, n, *seed)); err != nil {
					return err
				}
			}
		}
		return nil
	case "time":
		for _, k := range ks {
			for _, n := range ns {
				if err := timeOne(*dir, k, n, *reps); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func timeOne(dir, kind string, n, reps int) error {
	cost, err := laptest.ReadMatrix(filepath.Join(dir, fmt.Sprintf("%s_%d.f64", kind, n)), n)
	if err != nil {
		return err
	}
	// Thread CPU time is only meaningful if the goroutine stays on one
	// thread; the solver itself is single-threaded.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var s lap.Solver
	var total float64
	walls := make([]float64, 0, reps)
	cpus := make([]float64, 0, reps)
	for range reps {
		runtime.GC() // keep collection of earlier garbage out of the timing
		c0 := threadCPU()
		t0 := time.Now()
		_, t, err := s.Solve(n, cost)
		wall := time.Since(t0)
		cpu := threadCPU() - c0
		if err != nil {
			return err
		}
		total = t
		walls = append(walls, wall.Seconds()*1e3)
		cpus = append(cpus, cpu.Seconds()*1e3)
	}
	slices.Sort(walls)
	slices.Sort(cpus)
	fmt.Printf("%s\t%d\t%.3f\t%.3f\t%.3f\t%.17g\n", kind, n, walls[len(walls)/2], walls[0], cpus[len(cpus)/2], total)
	return nil
}

// threadCPU returns the CPU time used so far by the calling OS thread
// (clock_gettime(CLOCK_THREAD_CPUTIME_ID), nanosecond resolution).
func threadCPU() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}
