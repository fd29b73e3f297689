// Command onnx-rebasin aligns, permutes and merges ONNX models with Git
// Re-Basin. Run "onnx-rebasin help" for the list of commands.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
)

func main() {
	os.Exit(mainExit())
}

// mainExit runs the command line and maps its error to an exit status:
// 0 success, 2 usage error, 1 any other failure.
func mainExit() int {
	// For performance work: ONNX_REBASIN_CPUPROFILE=file writes a CPU
	// profile of the whole command (go tool pprof reads it).
	if path := os.Getenv("ONNX_REBASIN_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_CPUPROFILE: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_CPUPROFILE: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	err := runWith(&cmdContext{stdout: os.Stdout, stderr: os.Stderr, stderrIsTerminal: isTerminal(os.Stderr)}, os.Args[1:])
	if err != nil && !errors.Is(err, errHelpShown) {
		fmt.Fprintf(os.Stderr, "onnx-rebasin: %v\n", err)
	}
	return exitCode(err)
}

// exitCode maps run's error to the exit status: 0 success (and --help),
// 2 usage error, 1 any other failure.
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}
