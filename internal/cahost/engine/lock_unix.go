//go:build unix

package engine

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock(2) on f without waiting; busy is true
// when another process holds it.
func tryLock(f *os.File) (busy bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		return true, nil
	}
	return false, err
}

// sameOwner gives f the owner of dir when it has another (best effort:
// only root can, and only root makes a lock file someone else must open).
func sameOwner(f *os.File, dir string) {
	var fst, dst syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &fst) != nil || syscall.Stat(dir, &dst) != nil {
		return
	}
	if fst.Uid != dst.Uid || fst.Gid != dst.Gid {
		_ = f.Chown(int(dst.Uid), int(dst.Gid))
	}
}
