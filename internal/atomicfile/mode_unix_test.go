//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMode checks that a new file gets 0666 less the umask and that a file
// replacing another keeps the old one's mode, read-only included.
func TestMode(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	tests := []struct {
		name     string
		existing os.FileMode // 0: no file before
		want     os.FileMode
	}{
		{"new file", 0, 0o640},
		{"replaces 0600", 0o600, 0o600},
		{"replaces read-only 0444", 0o444, 0o444},
		{"replaces 0755", 0o755, 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			if tt.existing != 0 {
				if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteBytes(path, []byte("new")); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Fatalf("mode %v, want %v", got, tt.want)
			}
			if got, _ := os.ReadFile(path); string(got) != "new" {
				t.Fatalf("content %q", got)
			}
		})
	}
}
