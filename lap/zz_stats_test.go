package lap_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

func TestZZStats(t *testing.T) {
	cfgs := os.Getenv("ZZCFG")
	if cfgs == "" {
		t.Skip()
	}
	n, _ := strconv.Atoi(os.Getenv("ZZN"))
	mats := map[string][]float64{}
	kinds := strings.Split(os.Getenv("ZZKINDS"), ",")
	for _, k := range kinds {
		c, err := laptest.ReadMatrix(fmt.Sprintf("/tmp/lapexp/m/%s_%d.f64", k, n), n)
		if err != nil {
			t.Fatal(err)
		}
		mats[k] = c
	}
	for _, cs := range strings.Split(cfgs, " ") {
		var cfg [4]int
		for i, f := range strings.Split(cs, ",") {
			cfg[i], _ = strconv.Atoi(f)
		}
		restore := lap.SetTunables(cfg[0], cfg[1], cfg[2], cfg[3])
		for _, k := range kinds {
			var s lap.Solver
			best := time.Hour
			runtime.LockOSThread()
			for rep := 0; rep < 5; rep++ {
				t0 := threadCPU()
				_, _, err := s.Solve(n, mats[k])
				best = min(best, threadCPU()-t0)
				if err != nil {
					t.Fatal(err)
				}
			}
			fmt.Printf("cfg=%v n=%d %-8s %8.2fms %+v\n", cfg, n, k, float64(best.Microseconds())/1000, s.Stats())
		}
		restore()
	}
}

func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}
