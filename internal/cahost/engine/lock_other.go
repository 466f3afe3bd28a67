//go:build !unix

package engine

import (
	"errors"
	"os"
)

// tryLock: the CA host's commands run where dockerd does, on Linux; on
// this platform only the laptop's commands (import, ls, use, env,
// context) are meant to run.
func tryLock(*os.File) (busy bool, err error) {
	return false, errors.New("the CA host's state directory can only be used on Linux or macOS")
}

func sameOwner(*os.File, string) {}
