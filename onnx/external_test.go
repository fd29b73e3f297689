//go:build unix

package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// TestExternalDataConfined checks that external data is read only from
// regular files inside the model's folder, symbolic links resolved: no
// link (of a folder or a file) out of it, no device, no FIFO (which must
// not hang the load), no absolute or climbing location. The errors are one
// line naming the model, and never give the size of the file outside.
func TestExternalDataConfined(t *testing.T) {
	outside := t.TempDir()
	secret := bytes.Repeat([]byte{7}, 1221) // a size the errors must not reveal
	if err := os.WriteFile(filepath.Join(outside, "key.bin"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	weights := make([]byte, 16) // W's 4 float32 zeros
	cases := []struct {
		name, location string
		setup          func(t *testing.T, dir string)
		want           string // in the error; "" if the load must succeed
	}{
		{"file in the folder", "w.bin", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "w.bin"), weights)
		}, ""},
		{"link to a file in the folder", "sub/link.bin", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "w.bin"), weights)
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			symlink(t, "../w.bin", filepath.Join(dir, "sub", "link.bin"))
		}, ""},
		{"linked folder outside", "outside/key.bin", func(t *testing.T, dir string) {
			symlink(t, outside, filepath.Join(dir, "outside"))
		}, "escapes"},
		{"relative link outside", "up/key.bin", func(t *testing.T, dir string) {
			rel, err := filepath.Rel(dir, outside)
			if err != nil {
				t.Fatal(err)
			}
			symlink(t, rel, filepath.Join(dir, "up"))
		}, "escapes"},
		{"link to a file outside", "key.bin", func(t *testing.T, dir string) {
			symlink(t, filepath.Join(outside, "key.bin"), filepath.Join(dir, "key.bin"))
		}, "escapes"},
		{"link to /dev/zero", "zero", func(t *testing.T, dir string) {
			symlink(t, "/dev/zero", filepath.Join(dir, "zero"))
		}, "escapes"},
		{"linked /dev", "devlink/zero", func(t *testing.T, dir string) {
			symlink(t, "/dev", filepath.Join(dir, "devlink"))
		}, "escapes"},
		{"FIFO in the folder", "fifo", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
				testreq.Missing(t, "no FIFOs here: %v", err)
			}
		}, "not a regular file"},
		{"folder in the folder", "sub", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"climbing location", "../" + filepath.Base(outside) + "/key.bin", nil, "leaves the model's folder"},
		{"climbing inside the path", "sub/../../key.bin", nil, "leaves the model's folder"},
		{"absolute location", filepath.Join(outside, "key.bin"), nil, "absolute"},
		{"missing file", "none.bin", nil, "no such file"},
		{"range past the end", "short.bin", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "short.bin"), weights[:10])
		}, "has 10 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.setup != nil {
				c.setup(t, dir)
			}
			mp := tinyModel()
			setExternal(mp.Graph.Initializer[0], c.location, 0, 16)
			path := filepath.Join(dir, "m.onnx")
			model := marshal(t, mp)
			writeFile(t, path, model)
			done := make(chan error, 1)
			go func() {
				_, err := Load(path)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Load hangs")
			}
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded without error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q should be one line naming %s and saying %q", msg, path, c.want)
			}
			// Past the path: the temporary folder's random name may hold the digits.
			if strings.Contains(strings.TrimPrefix(msg, path), "1221") {
				t.Fatalf("error %q gives the size of a file outside the folder", msg)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, model) {
				t.Fatal("the model file changed")
			}
		})
	}
}

// TestExternalDataReadsOnlyItsRange checks that a tensor's bytes are read
// from its range of the file alone and are not kept shared with the rest.
func TestExternalDataReadsOnlyItsRange(t *testing.T) {
	dir := t.TempDir()
	data := append(bytes.Repeat([]byte{0xff}, 8), make([]byte, 16)...)
	writeFile(t, filepath.Join(dir, "w.bin"), append(data, bytes.Repeat([]byte{0xee}, 100)...))
	mp := tinyModel()
	setExternal(mp.Graph.Initializer[0], "w.bin", 8, 16)
	writeFile(t, filepath.Join(dir, "m.onnx"), marshal(t, mp))
	m, err := Load(filepath.Join(dir, "m.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.TensorBytes(m.Proto.Graph.Initializer[0])
	if err != nil || !bytes.Equal(b, make([]byte, 16)) || cap(b) != 16 {
		t.Fatalf("tensor bytes %v (cap %d), %v", b, cap(b), err)
	}
	if onnxLoc := m.Proto.Graph.Initializer[0].GetDataLocation(); onnxLoc != onnxpb.TensorProto_EXTERNAL {
		t.Fatalf("data location %v", onnxLoc)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		testreq.Missing(t, "no symbolic links here: %v", err)
	}
}

func makeFIFO(path string) error { return syscall.Mkfifo(path, 0o644) }
