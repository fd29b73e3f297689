//go:build unix

package eval

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Only regular files are opened: a FIFO would block, a directory is not data.
func TestLoadRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, ""); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("directory: %v", err)
	}
	fifo := filepath.Join(dir, "fifo.npy")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(fifo, ""); err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), fifo) {
		t.Fatalf("FIFO: %v", err)
	}
}
