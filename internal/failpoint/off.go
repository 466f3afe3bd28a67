//go:build !dtlsfailpoints

package failpoint

// Enabled reports whether fail points are compiled in.
const Enabled = false

// Inject does nothing in a production build.
func Inject(string) error { return nil }
