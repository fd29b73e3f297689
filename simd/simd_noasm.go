//go:build noasm || appengine || gccgo || !(amd64 || arm64)

package simd

// archImpls: no assembly on this platform or build; only the generic path.
func archImpls() []*impl { return nil }
