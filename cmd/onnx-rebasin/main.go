// Command onnx-rebasin aligns, permutes and merges ONNX models with Git
// Re-Basin. Run "onnx-rebasin help" for the list of commands.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	os.Exit(mainExit())
}

// mainExit runs the command line and maps its error to an exit status:
// 0 success, 2 usage error, 1 any other failure.
func mainExit() int {
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
