package authority

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// DefaultLockTimeout is how long a command waits for another dtls run that
// holds the state directory's lock (for instance one waiting at a
// passphrase prompt) before it gives up.
const DefaultLockTimeout = 60 * time.Second

// lockWaitNotice is how long a command waits silently before it says what
// it waits for.
const lockWaitNotice = time.Second

// lockPoll is how often a waiting command tries the lock again. flock(2)
// has no timeout of its own; a blocking flock could only be abandoned by a
// signal.
const lockPoll = 20 * time.Millisecond

// lock is an exclusive flock on STATE_DIR/dtls.lock. The kernel drops it
// when the process dies, so a kill -9 never leaves a stale lock; the file
// holds the holder's pid only to name it to those who wait.
type lock struct{ f *os.File }

// LockWait is called once when a command has waited a moment for the lock:
// holder is the pid written by the run that holds it ("" when unknown), and
// timeout how long the command waits in all.
type LockWait func(path, holder string, timeout time.Duration)

func acquireLock(stateDir string, timeout time.Duration, onWait LockWait) (*lock, error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	p := filepath.Join(stateDir, LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, RecordMode)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	start := time.Now()
	noticed := false
	for {
		busy, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %q: %w", p, err)
		}
		if !busy {
			break
		}
		waited := time.Since(start)
		holder := lockHolder(p)
		if waited >= timeout {
			f.Close()
			who := "another dtls run"
			if holder != "" {
				who += " (pid " + holder + ")"
			}
			return nil, hint(fmt.Errorf("gave up after %s waiting for the lock on %q: %s holds it", timeout, stateDir, who),
				"let that run finish (it may be waiting for a passphrase), or set DTLS_LOCK_TIMEOUT to wait longer")
		}
		if !noticed && waited >= min(lockWaitNotice, timeout/2) && onWait != nil {
			noticed = true
			onWait(p, holder, timeout)
		}
		time.Sleep(lockPoll)
	}
	// Name the holder for those who wait; best effort.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &lock{f}, nil
}

func lockHolder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s := string(bytes.TrimSpace(b))
	if _, err := strconv.Atoi(s); err != nil {
		return ""
	}
	return s
}

func (l *lock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
