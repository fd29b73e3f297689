package atomicfile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"golang.org/x/sys/unix"
)

// isDirect reports whether f is in direct I/O mode.
func isDirect(f *os.File) bool {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	return err == nil && flags&unix.O_DIRECT != 0
}

// requireDirect fails under CI (and skips elsewhere) when dir's file
// system has no direct I/O, which the tests below need.
func requireDirect(t *testing.T, dir string) {
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := setDirect(f, true); err != nil {
		testreq.Missing(t, "no direct I/O in %s: %v", dir, err)
	}
}

// TestDirectWrites checks that a file is written with direct I/O where
// the file system has it, whole blocks direct and the tail buffered, with
// the bytes given, for sizes around the block and staging sizes.
func TestDirectWrites(t *testing.T) {
	dir := t.TempDir()
	requireDirect(t, dir)
	for _, n := range []int{0, 1, directAlign - 1, directAlign, directAlign + 1, writebackChunk - 1, writebackChunk, writebackChunk + directAlign + 5, 2*writebackChunk + 3} {
		path := filepath.Join(dir, "out")
		f, err := Create(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if !f.w.direct || !isDirect(f.tmp) {
			t.Fatalf("%d bytes: not writing with direct I/O", n)
		}
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(i*7 + n)
		}
		// Uneven pieces, so that the staging buffer fills part way.
		for rest, k := want, 1; len(rest) > 0; k = k*3 + 1 {
			m := min(len(rest), k)
			if w, err := f.Write(rest[:m]); err != nil || w != m {
				t.Fatalf("%d bytes: Write = %d, %v", n, w, err)
			}
			rest = rest[m:]
		}
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
		if f.w.refused {
			t.Fatalf("%d bytes: a direct write was refused", n)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: the file has %d bytes, or other bytes", n, len(got))
		}
	}
}

// TestDirectRefused checks that a direct write the kernel refuses (here a
// misaligned buffer) leaves the file to buffered writes, with the same
// bytes: refused when the staging buffer fills, and when the last whole
// blocks are written at the end.
func TestDirectRefused(t *testing.T) {
	dir := t.TempDir()
	requireDirect(t, dir)
	for _, n := range []int{3*directAlign + 10, 2*writebackChunk + 24} {
		path := filepath.Join(dir, "out")
		f, err := Create(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, writebackChunk+directAlign+1)
		f.w.stageBuf = raw[1 : 1+writebackChunk : 1+writebackChunk]
		f.w.stage = f.w.stageBuf[:0]
		want := bytes.Repeat([]byte("refused!"), n/8+1)[:n]
		if _, err := f.Write(want); err != nil {
			t.Fatal(err)
		}
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
		if !f.w.refused || f.w.direct {
			t.Fatalf("%d bytes: refused %v, direct %v: want the misaligned write refused and buffered writes since", n, f.w.refused, f.w.direct)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: the file has %d bytes (%v), or other bytes", n, len(got), err)
		}
	}
}
