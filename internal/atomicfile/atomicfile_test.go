package atomicfile

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteContent checks that the file holds exactly what fill wrote, for
// write sizes around the writeback chunk (which splits large writes).
func TestWriteContent(t *testing.T) {
	const c = writebackChunk
	tests := []struct {
		name  string
		sizes []int
	}{
		{"empty", nil},
		{"zero-length write", []int{0}},
		{"small writes", []int{1, 2, 3, 100, 4096}},
		{"one chunk less one", []int{c - 1}},
		{"exactly one chunk", []int{c}},
		{"one chunk and one", []int{c + 1}},
		{"three chunks in one write", []int{3*c + 5}},
		{"across the boundary", []int{c - 3, 7, c, 2*c + 1, 1}},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "out")
			var want bytes.Buffer
			err := Write(path, func(w io.Writer) error {
				for k, n := range tt.sizes {
					p := make([]byte, n)
					for j := range p {
						p[j] = byte(i*31 + k*7 + j)
					}
					want.Write(p)
					if m, err := w.Write(p); err != nil || m != n {
						t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("file has %d bytes, want %d (or the bytes differ)", len(got), want.Len())
			}
			assertNoTemp(t, dir)
		})
	}
}

// TestWriteFailureKeepsTarget checks that a failing fill leaves the old
// target and no temporary file.
func TestWriteFailureKeepsTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		if _, err := w.Write(make([]byte, writebackChunk+10)); err != nil {
			t.Error(err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("target = %q, want %q", got, "old")
	}
	assertNoTemp(t, dir)
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	tmps, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if len(tmps) > 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

// TestCancel checks that cancelling the context stops the writes and
// removes the temporary file, leaving the old target.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wrote := 0
	err := WriteContext(ctx, path, func(w io.Writer) error {
		for {
			n, err := w.Write(make([]byte, 1<<20))
			wrote += n
			if err != nil {
				return err
			}
			if wrote == 5<<20 {
				cancel()
			}
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want %v", err, context.Canceled)
	}
	if wrote > 5<<20+writebackChunk {
		t.Fatalf("wrote %d bytes after the cancel", wrote-5<<20)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("target = %q, want %q", got, "old")
	}
	assertNoTemp(t, dir)
	// Cancelled after the writes: the rename does not happen either.
	f, err := Create(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	f.ctx = ctx
	if err := f.Commit(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit after cancel: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("target = %q, want %q", got, "old")
	}
	assertNoTemp(t, dir)
}

// TestRemoveTemps checks that RemoveTemps removes the temporary files of
// writes in progress and only those.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	done, err := Create(context.Background(), filepath.Join(dir, "done"))
	if err != nil {
		t.Fatal(err)
	}
	if err := done.Commit(); err != nil {
		t.Fatal(err)
	}
	var open []*File
	for _, name := range []string{"a", "b"} {
		f, err := Create(context.Background(), filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(name)); err != nil {
			t.Fatal(err)
		}
		open = append(open, f)
	}
	RemoveTemps()
	assertNoTemp(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		t.Fatal(err)
	}
	for _, f := range open {
		if err := f.Commit(); err == nil {
			t.Fatal("a removed temporary file was committed")
		}
	}
}
