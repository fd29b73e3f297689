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
func mainExit() (status int) {
	// For performance work: ONNX_REBASIN_CPUPROFILE=file writes a CPU
	// profile of the whole command (go tool pprof reads it).
	if path := os.Getenv("ONNX_REBASIN_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_CPUPROFILE: %v\n", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_CPUPROFILE: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_CPUPROFILE: %v\n", err)
				status = max(status, 1)
			}
		}()
	}
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return 0
	}
	if !errors.Is(err, errHelpShown) {
		fmt.Fprintf(os.Stderr, "onnx-rebasin: %v\n", err)
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	if errors.Is(err, errHelpShown) {
		return 0
	}
	return 1
}
