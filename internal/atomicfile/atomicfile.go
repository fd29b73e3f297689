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
	"syscall"
	"unsafe"
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
	f.w.startDirect()
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
	if err := f.w.flush(); err != nil {
		f.tmp.Close()
		return fmt.Errorf("%s: %w", f.path, err)
	}
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
	f.w.release()
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

// writeback passes writes to f. Where the file system allows it, f is
// written with direct I/O (O_DIRECT), whole aligned blocks from an aligned
// staging buffer, the last partial block in the ordinary way: a buffered
// write of a large model must first find page cache for every byte, which
// on the benchmark VM ran at about 100 MB/s (fresh memory the host had
// taken back) against 1.4–1.6 GB/s direct (see docs/design.md). Otherwise,
// or once a direct write fails, writes are buffered and the kernel is
// asked to start writing each further writebackChunk bytes to disk at
// once, so that the final Sync waits for the last chunk only instead of
// the whole file. It fails once ctx is cancelled, checked at every chunk,
// so that an interrupted save stops within a few MiB.
type writeback struct {
	f                *os.File
	ctx              context.Context
	written, started int64
	// direct: f is in direct I/O mode; stage holds the bytes not yet
	// written (fewer than len(stageBuf)).
	direct          bool
	stageBuf, stage []byte
	refused         bool // a direct write was refused: buffered since
}

const writebackChunk = 4 << 20

// directAlign is the alignment of direct I/O's buffers, offsets and
// lengths: the largest logical block size of common disks.
const directAlign = 4096

// stagePool holds direct I/O's staging buffers, shared by the files a
// command writes one after another.
var stagePool sync.Pool

// startDirect turns direct I/O on when f's file system supports it.
func (w *writeback) startDirect() {
	w.direct = setDirect(w.f, true) == nil
}

// takeStage takes the staging buffer from stagePool on first use.
func (w *writeback) takeStage() {
	if w.stageBuf == nil {
		if b, ok := stagePool.Get().(*[]byte); ok {
			w.stageBuf = *b
		} else {
			raw := make([]byte, writebackChunk+directAlign)
			skip := int((directAlign - uintptr(unsafe.Pointer(&raw[0]))%directAlign) % directAlign)
			w.stageBuf = raw[skip : skip+writebackChunk : skip+writebackChunk]
		}
		w.stage = w.stageBuf[:0]
	}
}

// release gives the staging buffer back to stagePool (if it is one that
// takeStage would make: tests stage through misaligned ones).
func (w *writeback) release() {
	if b := w.stageBuf; b != nil {
		if cap(b) == writebackChunk && uintptr(unsafe.Pointer(&b[:1][0]))%directAlign == 0 {
			stagePool.Put(&b)
		}
		w.stageBuf, w.stage = nil, nil
	}
}

func (w *writeback) Write(p []byte) (int, error) {
	if w.direct {
		return w.writeDirect(p)
	}
	return w.writeBuffered(p)
}

// writeDirect stages p and writes every full staging buffer.
func (w *writeback) writeDirect(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		if err := w.ctx.Err(); err != nil {
			return done, err
		}
		w.takeStage()
		n := copy(w.stage[len(w.stage):cap(w.stage)], p[done:])
		w.stage = w.stage[:len(w.stage)+n]
		done += n
		if len(w.stage) == cap(w.stage) {
			if err := w.writeStage(len(w.stage)); err != nil {
				return done, err
			}
			if !w.direct {
				m, err := w.writeBuffered(p[done:])
				return done + m, err
			}
		}
	}
	return done, nil
}

// writeStage writes the first n bytes of the staging buffer (n a multiple
// of directAlign) with direct I/O and keeps the rest. If the file system
// refuses, the file goes on buffered from here: the bytes are the same.
func (w *writeback) writeStage(n int) error {
	if n > 0 {
		m, err := w.f.Write(w.stage[:n])
		w.written += int64(m)
		if err != nil {
			if m != 0 || !errors.Is(err, syscall.EINVAL) || setDirect(w.f, false) != nil {
				return err
			}
			w.direct, w.refused = false, true
			if _, err := w.writeBuffered(w.stage[:n]); err != nil {
				return err
			}
		}
		w.started = w.written
	}
	rest := copy(w.stage, w.stage[n:])
	w.stage = w.stage[:rest]
	return nil
}

// flush writes what direct I/O has staged: the whole blocks directly, the
// last partial block buffered (which the file's Sync then writes).
func (w *writeback) flush() error {
	defer w.release()
	if !w.direct {
		return nil
	}
	if err := w.writeStage(len(w.stage) &^ (directAlign - 1)); err != nil {
		return err
	}
	if w.direct {
		if err := setDirect(w.f, false); err != nil {
			return err
		}
		w.direct = false
	}
	_, err := w.writeBuffered(w.stage)
	return err
}

func (w *writeback) writeBuffered(p []byte) (int, error) {
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
