//go:build noasm || appengine || gccgo || !amd64

package simd

// relax is one step of a spin-wait (see relax_amd64.go); elsewhere the
// loop's own loads are the pause.
func relax() {}
