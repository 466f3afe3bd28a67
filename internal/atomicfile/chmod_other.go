//go:build !unix

package atomicfile

import "os"

// Chmod sets path's mode (Windows: the read-only attribute only).
func Chmod(path string, mode os.FileMode) error { return os.Chmod(path, mode) }
