//go:build !noasm && !appengine && !gccgo

package simd

// relax is one step of a spin-wait: a few PAUSE instructions, which leave
// the core to an SMT sibling (the other vCPU may be one) instead of
// hammering it with loads.
func relax() { pauseLoop(8) }
