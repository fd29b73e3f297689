//go:build !unix

package atomicfile

// LockDir does nothing where there is no flock: concurrent writers of one
// model with external data are not ordered there.
func LockDir(dir string) (unlock func(), err error) { return func() {}, nil }
