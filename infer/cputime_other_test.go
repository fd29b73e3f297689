//go:build !unix

package infer

import "time"

func processCPU() time.Duration { return 0 }
