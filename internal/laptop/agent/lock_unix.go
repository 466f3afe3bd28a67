//go:build unix

package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockPoll is how often a waiting run tries the lock again: flock(2) has
// no timeout, and a blocking one could not be given up when ctx ends.
const lockPoll = 20 * time.Millisecond

// lockDir takes an exclusive flock(2) on the directory dir (the parent of
// a bundle), so that two agents, or an agent and `dtls enroll --force`,
// never renew the same bundle at once nor clean up each other's temporary
// files. The kernel drops it when the process dies: a kill -9 leaves no
// stale lock, and no lock file is left in the directory.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", dir, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %q: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %q: another dtls agent or enroll holds it: %w", dir, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}
