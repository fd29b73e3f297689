package simd

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestTuneKernel(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	runtime.GOMAXPROCS(1)
	for _, im := range available()[:2] {
		for _, kc := range []int{128, 256, 512, 1024} {
			mk := im.sgemm
			a := make([]float32, kc*mk.mr)
			b := getBuf[float32](kc * mk.nr)
			c := make([]float32, mk.mr*mk.nr)
			for i := range a {
				a[i] = 1e-3
			}
			for i := range b {
				b[i] = 1e-3
			}
			reps := 200000 * 256 / kc
			if im.name == "generic" {
				reps = 2000
			}
			t0, c0 := time.Now(), cpuNow()
			for r := 0; r < reps; r++ {
				mk.fn(kc, a, b, c, mk.nr, 1, 1)
			}
			w, cp := time.Since(t0), cpuNow()-c0
			fl := 2 * float64(kc*mk.mr*mk.nr) * float64(reps)
			fmt.Printf("kernel %s %dx%d kc=%d: wall %.1f GFLOP/s, cpu %.1f GFLOP/s\n", im.name, mk.mr, mk.nr, kc, fl/w.Seconds()/1e9, fl/cp.Seconds()/1e9)
		}
	}
}

func TestTuneGemm(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	n := 1024
	x, y, z := benchMatrices(n)
	for _, im := range available()[:2] {
		for _, tb := range []bool{false, true} {
			for _, w := range []int{1, 2} {
				runtime.GOMAXPROCS(w)
				gemm(im, w, false, tb, n, n, n, 1, x, n, y, n, 0, z, n)
				reps := 10
				t0, c0 := time.Now(), cpuNow()
				for r := 0; r < reps; r++ {
					gemm(im, w, false, tb, n, n, n, 1, x, n, y, n, 0, z, n)
				}
				wall, cp := time.Since(t0), cpuNow()-c0
				fl := 2 * float64(n*n*n) * float64(reps)
				fmt.Printf("gemm %s transB=%v workers=%d mc=%d nc=%d: wall %.1f GFLOP/s, cpu/worker %.1f GFLOP/s\n", im.name, tb, w, im.sgemm.mc, im.sgemm.nc, fl/wall.Seconds()/1e9, fl/cp.Seconds()/1e9*float64(w))
			}
		}
	}
}

func TestTunePack(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	runtime.GOMAXPROCS(1)
	n := 1024
	x, _, _ := benchMatrices(n)
	for _, mr := range []int{14, 32} {
		dst := getBuf[float32](256 * mr)
		for _, tr := range []bool{false, true} {
			reps := 20
			c0 := cpuNow()
			for r := 0; r < reps; r++ {
				for i0 := 0; i0+mr <= n; i0 += mr {
					for p0 := 0; p0 < n; p0 += 256 {
						packA(available()[0].transpose, dst, x, n, tr, i0, mr, p0, 256, mr)
					}
				}
			}
			cp := cpuNow() - c0
			el := float64(reps) * float64(n/mr*mr) * float64(n)
			fmt.Printf("packA mr=%d trans=%v: %.3f ns/elem, %.2f ms per 1024x1024\n", mr, tr, cp.Seconds()*1e9/el, cp.Seconds()*1e3/el*float64(n*n))
		}
	}
}

func TestTuneBlocks(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	runtime.GOMAXPROCS(1)
	n := 1024
	x, y, z := benchMatrices(n)
	im0 := available()[0]
	type cfg struct{ kc, mc int }
	var cfgs []cfg
	for _, kc := range []int{256, 384, 512} {
		for _, mcT := range []int{12, 18, 24, 36} {
			cfgs = append(cfgs, cfg{kc, mcT * im0.sgemm.mr})
		}
	}
	best := make([]float64, len(cfgs))
	for rep := 0; rep < 5; rep++ {
		for i, c := range cfgs {
			cp := *im0
			mk := *im0.sgemm
			mk.kc, mk.mc = c.kc, c.mc
			cp.sgemm = &mk
			gemm(&cp, 1, false, false, n, n, n, 1, x, n, y, n, 0, z, n)
			reps := 4
			c0 := cpuNow()
			for r := 0; r < reps; r++ {
				gemm(&cp, 1, false, false, n, n, n, 1, x, n, y, n, 0, z, n)
			}
			g := 2 * float64(n*n*n) * float64(reps) / (cpuNow() - c0).Seconds() / 1e9
			best[i] = max(best[i], g)
		}
	}
	for i, c := range cfgs {
		fmt.Printf("kc=%d mc=%d: cpu %.1f GFLOP/s\n", c.kc, c.mc, best[i])
	}
}

func TestTuneProf(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	runtime.GOMAXPROCS(1)
	n := 1024
	x, y, z := benchMatrices(n)
	im := available()[0]
	for r := 0; r < 60; r++ {
		gemm(im, 1, false, os.Getenv("NT") != "", n, n, n, 1, x, n, y, n, 0, z, n)
	}
}
