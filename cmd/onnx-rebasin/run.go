package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=..."; when it
// is not, runVersion falls back to the module version and VCS revision Go
// records in the binary.
var version = ""

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errHelpShown reports that -h/--help printed the usage: exit 0, no message.
var errHelpShown = errors.New("help shown")

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(c *cmdContext, args []string) error
}

// cmdContext carries the output streams to a subcommand, and the context
// that a signal cancels.
type cmdContext struct {
	ctx            context.Context
	stdout, stderr io.Writer
	// stderrIsTerminal enables the redrawn (\r) progress bars; logs and
	// pipes get none.
	stderrIsTerminal bool
}

var commands []command

func init() {
	commands = []command{
		{"inspect", "model.onnx [--json]", "show a model's inputs, outputs, operators and weights", runInspect},
		{"groups", "model.onnx [--json]", "list the permutation groups inferred from the graph", runGroups},
		{"permute", "model.onnx -o out.onnx [--seed N]", "permute every group at random (same function, new weights)", runPermute},
		{"align", "a.onnx b.onnx -o out.onnx", "permute b to match a (weight matching)", runAlign},
		{"merge", "m1.onnx m2.onnx ... -o out.onnx", "align models to a reference and average them (model soup)", runMerge},
		{"soup", "recipe.yaml -o soup.onnx", "build a soup from a recipe: linear, greedy, task_arithmetic, ties, dare, slerp, model_stock", runSoup},
		{"interp", "a.onnx b.onnx -o prefix [--steps 11]", "write the aligned interpolation path between two models", runInterp},
		{"barrier", "a.onnx b.onnx --data x.npy --labels y.npy", "loss barrier along naive and aligned paths, with a plot", runBarrier},
		{"eval", "model.onnx --data x.npy [--labels y.npy]", "accuracy, loss and throughput with the built-in interpreter", runEval},
		{"version", "", "print the version", runVersion},
	}
}

// run is the whole command line, separated from main so that tests can call
// it in process. stderrIsTerminal is set by main only.
func run(args []string, stdout, stderr io.Writer) error {
	return runWith(&cmdContext{ctx: context.Background(), stdout: stdout, stderr: stderr}, args)
}

func runWith(c *cmdContext, args []string) error {
	if len(args) == 0 {
		printUsage(c.stderr)
		return usagef("no command given")
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return runWith(c, []string{args[1], "--help"})
		}
		printUsage(c.stdout)
		return nil
	case "--version", "-version":
		name = "version"
	}
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd.run(c, args[1:])
		}
	}
	return usagef("unknown command %q (see onnx-rebasin help)", name)
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "onnx-rebasin: Git Re-Basin for ONNX models\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  onnx-rebasin %-8s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nRun \"onnx-rebasin COMMAND --help\" for a command's flags.\n")
}

// flags is a subcommand's flag set. The flags several commands share are
// declared by its methods, so that a flag has one name, default and meaning
// everywhere.
type flags struct {
	*flag.FlagSet
	usage func()
}

// newFlags makes a flag set that prints its usage on -h/--help only: a
// parse error is returned (and printed once, by main) instead.
func newFlags(c *cmdContext, name, args, summary string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on every error too
	usage := func() {
		fmt.Fprintf(c.stderr, "Usage: onnx-rebasin %s %s\n\n%s\n", name, args, summary)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(c.stderr, "\nFlags:")
			fs.SetOutput(c.stderr)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	}
	return &flags{fs, usage}
}

// The shared flags.

func (f *flags) output(usage string) *string { return f.String("o", "", usage) }
func (f *flags) seed(what string) *uint64 {
	return f.Uint64("seed", 0, "random seed for "+what)
}
func (f *flags) quiet() *bool { return f.Bool("q", false, "no progress or summary on stderr") }
func (f *flags) force() *bool {
	return f.Bool("force", false, "allow an output to replace a file the command reads")
}
func (f *flags) batch() *int {
	return f.Int("batch", 256, "samples per forward pass over data")
}
func (f *flags) maxIter() *int {
	return f.Int("max-iter", 100, "maximum number of weight-matching sweeps (at least 1)")
}
func (f *flags) restarts() *int {
	return f.Int("restarts", 0, "further weight-matching descents, each from the identity (or the activation match with --method hybrid) in a visiting order of its own; the one that ends with the highest objective is kept")
}
func (f *flags) start() *string {
	return f.String("start", "auto", "where weight matching's first descent starts: signature (units paired by a statistic of their weights, or the identity where that scores lower), identity (the paper's start), or auto: signature where some group is computed by several layers (residual stream, depthwise convolution, attention), identity otherwise")
}
func (f *flags) asJSON() *bool {
	return f.Bool("json", false, "print JSON on stdout (see docs/json.md)")
}

// method is --method; data names the flag whose inputs activation matching
// runs on. checkMethod validates the value.
func (f *flags) method(data string) *string {
	return f.String("method", "weight", "alignment: weight (weight matching), activation (activation matching on the inputs of "+data+
		") or hybrid (activation matching as the start of weight matching)")
}

func (f *flags) resetBN(what string) *string {
	return f.String("reset-bn", "", "recompute the BatchNorm statistics of "+what+" on these inputs (.npy `file`)")
}
func (f *flags) repair(what string) *string {
	return f.String("repair", "", "REPAIR "+what+" on these inputs (.npy `file`): restore each channel's interpolated mean and std")
}

// parse parses args allowing flags before, between and after the positional
// arguments, as users type "align a.onnx b.onnx -o out.onnx"; "--" ends the
// flags. It checks the number of positional arguments is in [min, max]
// (max < 0: no limit).
func (f *flags) parse(args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.usage()
				return nil, errHelpShown
			}
			return nil, usagef("%s: %v (see onnx-rebasin %s --help)", f.Name(), err, f.Name())
		}
		rest := f.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" && !f.isValue(args, used-1) {
			pos = append(pos, rest...) // flag.Parse stopped at "--"
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		want := fmt.Sprint(min)
		if max != min {
			want = fmt.Sprintf("%d to %d", min, max)
			if max < 0 {
				want = fmt.Sprintf("at least %d", min)
			}
		}
		return nil, usagef("%s: want %s argument(s), got %d (see onnx-rebasin %s --help)", f.Name(), want, len(pos), f.Name())
	}
	return pos, nil
}

// isValue reports whether args[i] is the value of the flag before it
// ("-o --"), not the end of the flags.
func (f *flags) isValue(args []string, i int) bool {
	if i == 0 {
		return false
	}
	name := strings.TrimLeft(args[i-1], "-")
	if !strings.HasPrefix(args[i-1], "-") || strings.Contains(name, "=") || args[i-1] == "--" {
		return false
	}
	fl := f.Lookup(name)
	if fl == nil {
		return false
	}
	b, ok := fl.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

func runVersion(c *cmdContext, args []string) error {
	fs := newFlags(c, "version", "", "Print the version of onnx-rebasin.")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "onnx-rebasin %s\n", versionString())
	return nil
}

// versionString is the -ldflags version, else the module version of a
// "go install ...@version" build, else the VCS revision of a build from a
// checkout ("devel <rev>[-dirty]"), else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel " + rev[:min(12, len(rev))] + dirty
}

// plural is "1 group", "2 groups".
func plural(n int, one, many string) string {
	return fmt.Sprintf("%d %s", n, pluralWord(n, one, many))
}

// pluralWord is one or many by n.
func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// isTerminal reports whether f is a terminal: a character device other
// than the null device (portable without terminal ioctls).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// sortedKeys returns m's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
