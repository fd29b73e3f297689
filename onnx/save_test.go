//go:build unix

package onnx

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// externalModel returns a model whose weight W (n float32 values, all v)
// is external data, and whose doc_string says v, so that a reader can
// tell whether the model file and its data file come from one save.
func externalModel(t testing.TB, n int, v float32) *Model {
	t.Helper()
	dir := t.TempDir()
	mp := tinyModel()
	w := mp.Graph.Initializer[0]
	w.Dims = []int64{2, int64(n / 2)}
	raw := make([]byte, 4*n)
	tmp := &Model{}
	probe := proto.Clone(w).(*onnxpb.TensorProto)
	probe.RawData = raw
	if err := tmp.SetFloat32s(probe, slices.Repeat([]float32{v}, n)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), probe.RawData, 0o644); err != nil {
		t.Fatal(err)
	}
	setExternal(w, "w.bin", 0, 4*n)
	mp.DocString = proto.String(strconv.FormatFloat(float64(v), 'g', -1, 32))
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, marshal(t, mp), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkPair loads path and checks that its data is the data saved with it.
func checkPair(path string) error {
	m, err := Load(path)
	if err != nil {
		return err
	}
	w, err := m.Float32s(m.Proto.Graph.Initializer[0])
	if err != nil {
		return err
	}
	doc := m.Proto.GetDocString()
	for _, x := range w {
		if strconv.FormatFloat(float64(x), 'g', -1, 32) != doc {
			return errors.New("mixed pair: model " + doc + " with data of model " + strconv.FormatFloat(float64(x), 'g', -1, 32))
		}
	}
	return nil
}

// outputFiles lists the files in dir.
func outputFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkOneOutput checks that dir holds out.onnx and one data file, no
// temporary file, and that they belong together.
func checkOneOutput(t *testing.T, dir string) {
	t.Helper()
	names := outputFiles(t, dir)
	if len(names) != 2 || names[0] != "out.onnx" || !isDataFileOf(names[1], "out.onnx") {
		t.Fatalf("folder holds %v, want out.onnx and its data file", names)
	}
	if err := checkPair(filepath.Join(dir, "out.onnx")); err != nil {
		t.Fatal(err)
	}
}

// TestSaveExternalConcurrent saves different models with external data to
// one path from several goroutines (each save locks the folder as another
// process would) while a reader loads it: every load gives a consistent
// pair (or, when a newer save removed the data file between the reader's
// two reads, a missing-file error), and the end state is one whole save.
func TestSaveExternalConcurrent(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.onnx")
	const writers, saves = 4, 15
	models := make([]*Model, writers)
	for i := range models {
		models[i] = externalModel(t, 4096, float32(i+1))
	}
	if err := models[0].Save(out); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readErr error
	reads := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			reads++
			if err := checkPair(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
				readErr = err
				return
			}
		}
	}()
	var saveWG sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		saveWG.Add(1)
		go func() {
			defer saveWG.Done()
			for range saves {
				m := models[i].Clone()
				if err := m.Save(out); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	saveWG.Wait()
	close(stop)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if readErr != nil {
		t.Fatalf("reader: %v", readErr)
	}
	t.Logf("%d reads", reads)
	checkOneOutput(t, dir)
}

// TestSaveFailureKeepsPreviousOutput saves a model with external data,
// then fails a second, larger save to the same path by the file size
// limit (RLIMIT_FSIZE, in a child process): the first save's pair must be
// intact and nothing of the second left.
func TestSaveFailureKeepsPreviousOutput(t *testing.T) {
	if out := os.Getenv("ONNX_SAVE_CHILD"); out != "" {
		// Over the limit: the data file, or (the data file fitting) the
		// model, made large by an inline tensor.
		m := externalModel(t, 1<<16, 2) // 256 KiB of data
		if os.Getenv("ONNX_SAVE_CHILD_LARGE") == "model" {
			m = externalModel(t, 1024, 2)
			m.Proto.Graph.Initializer = append(m.Proto.Graph.Initializer, &onnxpb.TensorProto{
				Name: proto.String("inline"), Dims: []int64{1 << 16}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: make([]byte, 4<<16)})
		}
		var lim syscall.Rlimit
		lim.Cur, lim.Max = 64<<10, 64<<10
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		err := m.Save(out)
		if err == nil {
			t.Fatal("saved past the file size limit")
		}
		t.Log(err)
		return
	}
	tests := []struct {
		name  string
		first func(t *testing.T) *Model
		large string // what exceeds the limit in the second save: data or model
	}{
		{"data too large, over external data", func(t *testing.T) *Model { return externalModel(t, 1024, 1) }, "data"},
		{"model too large, over external data", func(t *testing.T) *Model { return externalModel(t, 1024, 1) }, "model"},
		{"data too large, over an inline model", func(t *testing.T) *Model { return &Model{Proto: tinyModel()} }, "data"},
		{"model too large, over an inline model", func(t *testing.T) *Model { return &Model{Proto: tinyModel()} }, "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out.onnx")
			if err := tt.first(t).Save(out); err != nil {
				t.Fatal(err)
			}
			before := map[string][]byte{}
			for _, name := range outputFiles(t, dir) {
				before[name], _ = os.ReadFile(filepath.Join(dir, name))
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestSaveFailureKeepsPreviousOutput$", "-test.v")
			cmd.Env = append(os.Environ(), "ONNX_SAVE_CHILD="+out, "ONNX_SAVE_CHILD_LARGE="+tt.large)
			log, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(log), "file too large") {
				t.Fatalf("child: %v\n%s", err, log)
			}
			after := outputFiles(t, dir)
			if len(after) != len(before) {
				t.Fatalf("folder holds %v after the failed save", after)
			}
			for _, name := range after {
				if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, before[name]) {
					t.Fatalf("%s changed", name)
				}
			}
			if _, err := Load(out); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSaveReplacesDataFile checks that saving again to one path leaves
// only the new save's data file; that saving the same model twice is
// byte-identical; and that an inline save over an external one removes
// its data file, while a data file that Save did not name is kept.
func TestSaveReplacesDataFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.onnx")
	other := filepath.Join(dir, "out.onnx.data") // not Save's: kept
	if err := os.WriteFile(other, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	m1 := externalModel(t, 1024, 1)
	if err := m1.Save(out); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(out)
	if err := m1.Save(out); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(first, again) {
		t.Fatal("saving the same model twice gives different bytes")
	}
	if err := externalModel(t, 1024, 2).Save(out); err != nil {
		t.Fatal(err)
	}
	os.Remove(other)
	checkOneOutput(t, dir)
	if err := os.WriteFile(other, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (&Model{Proto: tinyModel()}).Save(out); err != nil {
		t.Fatal(err)
	}
	if names := outputFiles(t, dir); !slices.Equal(names, []string{"out.onnx", "out.onnx.data"}) {
		t.Fatalf("folder holds %v after an inline save", names)
	}
}
