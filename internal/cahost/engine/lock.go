package engine

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

// LockFile is a state directory's lock, both faces': the CA host's
// commands hold it for their whole run, the online CA's server for each
// journaled change, and each face's Recover runs under it, so that no
// run replays or undoes a change another run is making.
const LockFile = "dtls.lock"

// Lock is an exclusive flock on STATE_DIR/dtls.lock. The kernel drops it
// when the process dies, so a kill -9 never leaves a stale lock; the file
// holds the holder's pid only to name it to those who wait.
type Lock struct{ f *os.File }

// LockWait is called once when a command has waited a moment for the lock:
// holder is the pid written by the run that holds it ("" when unknown), and
// timeout how long the command waits in all.
type LockWait func(path, holder string, timeout time.Duration)

// LockBusyError is a lock another run held for the whole timeout.
type LockBusyError struct {
	Dir     string
	Holder  string // the holder's pid, "" when unknown
	Timeout time.Duration
}

func (e *LockBusyError) Error() string {
	who := "another dtls run"
	if e.Holder != "" {
		who += " (pid " + e.Holder + ")"
	}
	return fmt.Sprintf("gave up after %s waiting for the lock on %q: %s holds it", e.Timeout, e.Dir, who)
}

// AcquireLock takes stateDir's lock, waiting for timeout at most
// (DefaultLockTimeout when <= 0); onWait, when not nil, is told once
// when the wait lasts.
func AcquireLock(stateDir string, timeout time.Duration, onWait LockWait) (*Lock, error) {
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	p := filepath.Join(stateDir, LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	// The lock belongs to the directory's owner: a 'sudo dtls ca token'
	// that makes it must not lock out the online CA's server, which runs
	// as its own user (sysunit.CA).
	sameOwner(f, stateDir)
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
			return nil, &LockBusyError{Dir: stateDir, Holder: holder, Timeout: timeout}
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
	return &Lock{f}, nil
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

// Release lets the lock go; a nil Lock is none.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
