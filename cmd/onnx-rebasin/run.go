package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// version, when set at build time with -ldflags "-X main.version=...",
// overrides the version read from the build information.
var version string

// versionString is version if set, else the module version that go install
// records (v1.2.3, or a pseudo-version), else the VCS revision of a build
// in a checkout ("devel" and the commit, "+dirty" when it had changes).
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
			rev = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel " + rev + dirty
}

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

// cmdContext carries the output streams to a subcommand.
type cmdContext struct {
	stdout, stderr io.Writer
}

var commands []command

func init() {
	commands = []command{
		{"inspect", "model.onnx [--json]", "show a model's inputs, outputs, operators and weights", runInspect},
		{"groups", "model.onnx [--json]", "list the permutation groups inferred from the graph", runGroups},
		{"permute", "model.onnx -o out.onnx [--seed N]", "permute every group at random (same function, new weights)", runPermute},
		{"align", "a.onnx b.onnx -o out.onnx", "permute b to match a (weight matching)", runAlign},
		{"merge", "m1.onnx m2.onnx ... -o out.onnx", "align models to a reference and average them (model soup)", runMerge},
		{"interp", "a.onnx b.onnx -o prefix [--steps 11]", "write the aligned interpolation path between two models", runInterp},
		{"barrier", "a.onnx b.onnx --data x.npy --labels y.npy", "loss barrier along naive and aligned paths, with a plot", runBarrier},
		{"eval", "model.onnx --data x.npy [--labels y.npy]", "accuracy, loss and throughput with the built-in interpreter", runEval},
		{"version", "", "print the version", runVersion},
	}
}

// run is the whole command line, separated from main so that tests can call it in process.
func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return usagef("no command given")
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		printUsage(stdout)
		return nil
	case "--version", "-version":
		name = "version"
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(&cmdContext{stdout, stderr}, args[1:])
		}
	}
	printUsage(stderr)
	return usagef("unknown command %q", name)
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "onnx-rebasin: Git Re-Basin for ONNX models\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  onnx-rebasin %-8s %s\n      %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nRun \"onnx-rebasin COMMAND --help\" for a command's flags.\n")
}

// newFlags makes a flag set whose usage line and errors go to stderr.
func newFlags(c *cmdContext, name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "Usage: onnx-rebasin %s %s\n\n%s\n", name, args, summary)
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintln(c.stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args allowing flags before, between and after the
// positional arguments, as users type "align a.onnx b.onnx -o out.onnx".
// It checks the number of positional arguments is in [min, max] (max < 0: no limit).
func parseFlags(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelpShown
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" && len(args) > 0 && args[len(args)-len(rest)] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		fs.Usage()
		want := fmt.Sprint(min)
		if max != min {
			want = fmt.Sprintf("%d to %d", min, max)
			if max < 0 {
				want = fmt.Sprintf("at least %d", min)
			}
		}
		return nil, usagef("%s: want %s argument(s), got %d", fs.Name(), want, len(pos))
	}
	return pos, nil
}

func runVersion(c *cmdContext, args []string) error {
	fs := newFlags(c, "version", "", "Print the version of onnx-rebasin.")
	if _, err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "onnx-rebasin %s\n", versionString())
	return nil
}
