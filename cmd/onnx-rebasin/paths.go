package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// files lists every path a command reads and writes, so that they are all
// checked before any work starts: inputs exist, no output is a directory or
// lies in a missing one, no output replaces an input (unless --force) and no
// two outputs are the same file.
type files struct {
	force   bool
	inputs  []namedPath
	outputs []namedPath
}

// namedPath is a path and the argument it came from ("-o", "--data", ...),
// for the error message.
type namedPath struct{ arg, path string }

// read adds an input; an empty path (a flag not given) is skipped.
func (f *files) read(arg string, paths ...string) {
	for _, p := range paths {
		if p != "" {
			f.inputs = append(f.inputs, namedPath{arg, p})
		}
	}
}

// write adds an output; an empty path (a flag not given) is skipped.
func (f *files) write(arg string, paths ...string) {
	for _, p := range paths {
		if p != "" {
			f.outputs = append(f.outputs, namedPath{arg, p})
		}
	}
}

// check validates the paths. Missing inputs are failures (exit 1); outputs
// that clash with each other or with an input are usage errors (exit 2).
func (f *files) check() error {
	inInfo := make([]fs.FileInfo, len(f.inputs))
	for i, in := range f.inputs {
		fi, err := os.Stat(in.path)
		if err != nil {
			return fmt.Errorf("%s: %w", in.path, unwrapPathError(err))
		}
		if fi.IsDir() {
			return fmt.Errorf("%s: is a directory, not a file", in.path)
		}
		inInfo[i] = fi
	}
	outInfo := make([]fs.FileInfo, len(f.outputs))
	for i, out := range f.outputs {
		fi, err := os.Stat(out.path)
		switch {
		case err == nil && fi.IsDir():
			return usagef("%s %s: is a directory; give a file name", out.arg, out.path)
		case err == nil:
			outInfo[i] = fi
		case errors.Is(err, fs.ErrNotExist):
			dir := filepath.Dir(out.path)
			if di, err := os.Stat(dir); err != nil || !di.IsDir() {
				return usagef("%s %s: folder %s does not exist", out.arg, out.path, dir)
			}
		default:
			return fmt.Errorf("%s: %w", out.path, unwrapPathError(err))
		}
		for j, in := range f.inputs {
			if !f.force && samePath(out.path, outInfo[i], in.path, inInfo[j]) {
				return usagef("%s %s would overwrite the input %s (%s); use --force to allow", out.arg, out.path, in.path, in.arg)
			}
		}
		for j := range i {
			if samePath(out.path, outInfo[i], f.outputs[j].path, outInfo[j]) {
				return usagef("%s %s and %s %s are the same file", f.outputs[j].arg, f.outputs[j].path, out.arg, out.path)
			}
		}
	}
	return nil
}

// samePath reports whether two paths name one file: the same existing file
// (hard links, symlinks) or, for paths not created yet, the same absolute
// name.
func samePath(a string, ai fs.FileInfo, b string, bi fs.FileInfo) bool {
	if ai != nil && bi != nil {
		return os.SameFile(ai, bi)
	}
	aa, err1 := filepath.Abs(a)
	ba, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == ba
}

// unwrapPathError drops the path and operation of an *fs.PathError, for
// messages that name the path themselves ("x.npy: no such file or directory").
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
