// Package atomicfile writes files so that readers never see a partial result:
// data goes to a temporary file in the target's folder, is synced, and is then
// renamed over the target. On any error the temporary file is removed and the
// target is left as it was.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write creates path with the bytes that fill writes. The file gets mode 0644.
func Write(path string, fill func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fill(&writeback{f: tmp}); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// WriteBytes is Write for data already in memory.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}

// writeback passes writes to f and has the kernel start writing each
// further writebackChunk bytes to disk at once, so that the final Sync
// waits for the last chunk only instead of the whole file (most of the
// time of saving a large model).
type writeback struct {
	f                *os.File
	written, started int64
}

const writebackChunk = 4 << 20

func (w *writeback) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		// Up to the next chunk boundary, so that large writes start
		// writeback part way too.
		part := p[done:min(len(p), done+int(w.started+writebackChunk-w.written))]
		n, err := w.f.Write(part)
		done += n
		w.written += int64(n)
		if w.written-w.started >= writebackChunk {
			startWriteback(w.f, w.started, w.written-w.started)
			w.started = w.written
		}
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
