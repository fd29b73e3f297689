package lap_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

func TestZZWarm(t *testing.T) {
	cfgs := os.Getenv("ZZWCFG")
	if cfgs == "" {
		t.Skip()
	}
	n, _ := strconv.Atoi(os.Getenv("ZZN"))
	base, err := laptest.ReadMatrix(fmt.Sprintf("/tmp/lapexp/m/wm_%d.f64", n), n)
	if err != nil {
		t.Fatal(err)
	}
	// entry scale
	ss := 0.0
	for _, c := range base {
		ss += c * c
	}
	std := 0.0
	{
		m := 0.0
		for _, c := range base {
			m += c
		}
		m /= float64(len(base))
		for _, c := range base {
			std += (c - m) * (c - m)
		}
		std = sqrt(std / float64(len(base)))
	}
	for _, rel := range []float64{0.001, 0.01, 0.1, 0.3} {
		pert := perturb(base, 1, rel*std, false, 5)
		for _, cs := range strings.Split(cfgs, " ") {
			var cfg [4]int
			for i, f := range strings.Split(cs, ",") {
				cfg[i], _ = strconv.Atoi(f)
			}
			restore := lap.SetTunables(cfg[0], cfg[1], cfg[2], cfg[3])
			var s lap.Solver
			perm, _, _ := s.Solve(n, base)
			_, v := s.Duals()
			bw, bc := time.Hour, time.Hour
			var sw, sc lap.Stats
			var tw, tc float64
			for rep := 0; rep < 3; rep++ {
				var s2 lap.Solver
				t0 := time.Now()
				_, tw, _ = s2.SolveWarm(n, pert, perm, v)
				bw = min(bw, time.Since(t0))
				sw = s2.Stats()
				t0 = time.Now()
				_, tc, _ = s2.Solve(n, pert)
				bc = min(bc, time.Since(t0))
				sc = s2.Stats()
			}
			fmt.Printf("rel=%.3f cfg=%v warm %7.2fms %+v | cold %7.2fms %+v  same=%v\n", rel, cfg, ms(bw), sw, ms(bc), sc, tw == tc)
			restore()
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func sqrt(x float64) float64     { return mathSqrt(x) }

var mathSqrt = func(x float64) float64 {
	z := x
	for i := 0; i < 60; i++ {
		z = (z + x/z) / 2
	}
	return z
}
