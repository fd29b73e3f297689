// Command onnx-rebasin aligns, permutes and merges ONNX models with Git
// Re-Basin. Run "onnx-rebasin help" for the list of commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/internal/atomicfile"
)

// interruptGrace is how long a command may take to stop after a signal.
const interruptGrace = 2 * time.Second

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
	// ONNX_REBASIN_TRACE=file writes an execution trace of the whole
	// command (go tool trace reads it): which goroutines ran when, to see
	// how many cores each phase keeps busy.
	if path := os.Getenv("ONNX_REBASIN_TRACE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_TRACE: %v\n", err)
			return 1
		}
		if err := trace.Start(f); err != nil {
			fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_TRACE: %v\n", err)
			return 1
		}
		defer func() {
			trace.Stop()
			if err := f.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "onnx-rebasin: ONNX_REBASIN_TRACE: %v\n", err)
				status = max(status, 1)
			}
		}()
	}
	// SIGINT and SIGTERM cancel the context: the long loops and the
	// saves stop and remove their temporary files, and the command
	// fails. A command that does not stop within interruptGrace (a loop
	// that does not watch the context) is ended, its temporary files
	// removed. A second signal kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		stop()
		select {
		case <-done:
		case <-time.After(interruptGrace):
			atomicfile.RemoveTemps()
			fmt.Fprintf(os.Stderr, "onnx-rebasin: interrupted (%v)\n", context.Cause(ctx))
			os.Exit(1)
		}
	}()
	err := runWith(&cmdContext{ctx: ctx, stdout: os.Stdout, stderr: os.Stderr, stderrIsTerminal: isTerminal(os.Stderr)}, os.Args[1:])
	close(done)
	if err != nil && ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "onnx-rebasin: interrupted (%v)\n", context.Cause(ctx))
		return 1
	}
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
