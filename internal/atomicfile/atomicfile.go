// Package atomicfile writes files so that readers never see a partial result:
// data goes to a temporary file in the target's folder, is synced, and is then
// renamed over the target. On any error, and when the context is cancelled,
// the temporary file is removed and the target is left as it was.
//
// A new file gets the mode 0666 less the umask, as os.Create gives; a file
// that replaces another keeps the mode of the one it replaces.
package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// live holds the names of the temporary files not yet committed or
// aborted, for RemoveTemps.
var live sync.Map

// RemoveTemps removes every temporary file not yet committed or aborted,
// for a process that must exit at once (on a signal) without waiting for
// its writers to stop.
func RemoveTemps() {
	live.Range(func(name, _ any) bool {
		os.Remove(name.(string))
		live.Delete(name)
		return true
	})
}

// File is a file being written under a temporary name beside its target.
// Commit puts it in place; Abort removes it. A File is not safe for
// concurrent use.
type File struct {
	ctx    context.Context
	path   string // the target
	tmp    *os.File
	w      writeback
	closed bool
	done   bool // committed or aborted
}

// Create starts writing path: a temporary file named after it, in its
// folder. Writes fail once ctx is cancelled.
func Create(ctx context.Context, path string) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir, base := filepath.Dir(path), filepath.Base(path)
	// An existing target keeps its mode; a new file gets the umask's.
	perm, keep := fs.FileMode(0o666), false
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		perm, keep = fi.Mode().Perm(), true
	}
	var tmp *os.File
	for try := 0; ; try++ {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64()%1e10, 10))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm|0o200)
		if err == nil {
			tmp = f
			live.Store(name, true)
			break
		}
		if !errors.Is(err, fs.ErrExist) || try == 100 {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	f := &File{ctx: ctx, path: path, tmp: tmp, w: writeback{f: tmp, ctx: ctx}}
	if keep {
		// The umask may have cleared bits the old file had (and the
		// owner needed write access to fill it).
		if err := tmp.Chmod(perm); err != nil {
			f.Abort()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return f, nil
}

// Write writes p to the temporary file.
func (f *File) Write(p []byte) (int, error) { return f.w.Write(p) }

// Close syncs the temporary file and closes it, leaving it where it is for
// Commit or Abort.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if err := f.tmp.Sync(); err != nil {
		f.tmp.Close()
		return fmt.Errorf("%s: %w", f.path, err)
	}
	if err := f.tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	return nil
}

// Commit closes the file (see Close) and renames it over the target. On
// error the temporary file is removed.
func (f *File) Commit() error { return f.CommitAs(f.path) }

// CommitAs is Commit to another target in the same folder.
func (f *File) CommitAs(path string) (err error) {
	if f.done {
		return fmt.Errorf("%s: already committed or aborted", path)
	}
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	if err := f.Close(); err != nil {
		return err
	}
	if err := f.ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(f.tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	live.Delete(f.tmp.Name())
	f.done = true
	return nil
}

// Abort removes the temporary file. It does nothing after Commit, so it
// can be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	if !f.closed {
		f.closed = true
		f.tmp.Close()
	}
	os.Remove(f.tmp.Name())
	live.Delete(f.tmp.Name())
}

// Write creates path with the bytes that fill writes.
func Write(path string, fill func(w io.Writer) error) error {
	return WriteContext(context.Background(), path, fill)
}

// WriteContext is Write that stops, removing the temporary file, when ctx
// is cancelled.
func WriteContext(ctx context.Context, path string, fill func(w io.Writer) error) error {
	f, err := Create(ctx, path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	return f.Commit()
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
// time of saving a large model). It fails once ctx is cancelled, checked
// at every chunk, so that an interrupted save stops within a few MiB.
type writeback struct {
	f                *os.File
	ctx              context.Context
	written, started int64
}

const writebackChunk = 4 << 20

func (w *writeback) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		if err := w.ctx.Err(); err != nil {
			return done, err
		}
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
