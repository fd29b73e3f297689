package hugepage

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// TestNoHugePageAdvice checks that Make leaves huge pages to the kernel:
// the mapping that holds a large buffer is not marked MADV_HUGEPAGE ("hg"
// in /proc/self/smaps), whose faults may stall (see the package comment).
func TestNoHugePageAdvice(t *testing.T) {
	b := Make[float32](4 * Size)
	b[0], b[len(b)-1] = 1, 1
	addr := uintptr(unsafe.Pointer(&b[0]))
	flags, err := vmFlags(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(flags) {
		if f == "hg" {
			t.Fatalf("the buffer's mapping is advised for huge pages: VmFlags %q", flags)
		}
	}
}

// vmFlags returns the VmFlags line of the mapping in /proc/self/smaps that
// contains addr.
func vmFlags(addr uintptr) (string, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inside := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			inside = lo <= addr && addr < hi
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok && inside {
			return rest, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no mapping in /proc/self/smaps holds %#x", addr)
}

// BenchmarkFirstTouch measures the page faults of a buffer's first touch:
// anonymous memory mapped, touched once per 4 KiB and unmapped, as is and
// advised with MADV_HUGEPAGE as Make once did. The kernel hands each run
// the pages the run before gave back, which the host still backs: this is
// the cheap case, where the advice wins. Memory the host has taken back
// (free huge pages, on the benchmark VM) costs far more with the advice,
// which only whole commands show (bench/zoo/README.md).
func BenchmarkFirstTouch(b *testing.B) {
	const n = 64 << 20
	for _, advised := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "advised"}[advised], func(b *testing.B) {
			b.SetBytes(n)
			for b.Loop() {
				m, err := syscall.Mmap(-1, 0, n+Size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
				if err != nil {
					b.Fatal(err)
				}
				skip := int((Size - uintptr(unsafe.Pointer(&m[0]))%Size) % Size)
				s := m[skip : skip+n]
				if advised {
					if err := syscall.Madvise(s, syscall.MADV_HUGEPAGE); err != nil {
						b.Fatal(err)
					}
				}
				for i := 0; i < n; i += 4096 {
					s[i] = 1
				}
				if err := syscall.Munmap(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
