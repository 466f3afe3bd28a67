package cmd

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
)

// Default locations, owned by package authority.
const (
	defaultStateDir   = authority.DefaultStateDir
	defaultCertsDir   = authority.DefaultCertsDir
	defaultDaemonJSON = authority.DefaultDaemonJSON
	defaultListen     = authority.DefaultListen
)

// absPath makes a flag's path absolute, naming the flag on error.
func absPath(flag, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("--%s: empty path", flag)
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("--%s %q: %w", flag, p, err)
	}
	return a, nil
}

// within reports whether path is dir or inside it, as the paths resolve.
func within(path, dir string) bool { return authority.Within(path, dir) }

// lockTimeout is DTLS_LOCK_TIMEOUT (a Go duration, e.g. 5m), or the
// default.
func lockTimeout(io IO) (time.Duration, error) {
	v := io.Getenv("DTLS_LOCK_TIMEOUT")
	if v == "" {
		return authority.DefaultLockTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("DTLS_LOCK_TIMEOUT=%q is not a positive duration (e.g. 60s, 5m)", v)
	}
	return d, nil
}

// authorityOptions are the options every command that opens the state
// directory passes: the passphrase source, and the lock wait.
func authorityOptions(io IO, k *caKeyOptions) (authority.Options, error) {
	timeout, err := lockTimeout(io)
	if err != nil {
		return authority.Options{}, err
	}
	o := authority.Options{
		LockTimeout: timeout,
		OnLockWait: func(path, holder string, timeout time.Duration) {
			who := "another dtls run"
			if holder != "" {
				who += " (pid " + holder + ")"
			}
			fmt.Fprintf(io.ErrOut, "dtls: waiting for %s to release %s (giving up after %s)\n", who, path, timeout)
		},
	}
	if k != nil {
		o.Passphrase = k.source(io)
	}
	return o, nil
}

// openAuthority opens the state directory for a command: it takes the
// lock, and reports what was finished of a killed run.
func openAuthority(io IO, stateDir string, k *caKeyOptions) (*authority.Authority, error) {
	o, err := authorityOptions(io, k)
	if err != nil {
		return nil, err
	}
	a, err := authority.Open(stateDir, o)
	if err != nil {
		return nil, err
	}
	reportRecovered(io, a.Recovered)
	return a, nil
}

func reportRecovered(io IO, rs []authority.Recovery) {
	for _, r := range rs {
		if !r.Finished {
			fmt.Fprintf(io.ErrOut, "recovered from an interrupted run: undid the unfinished %s\n", r.Change)
			continue
		}
		if len(r.Recorded) == 0 {
			fmt.Fprintf(io.ErrOut, "recovered from an interrupted run: finished the %s\n", r.Change)
		}
		for _, rec := range r.Recorded {
			fmt.Fprintf(io.ErrOut, "recovered from an interrupted run: finished the %s, recorded %s %q serial %s\n", r.Change, rec.Kind, rec.Name, rec.Serial)
		}
	}
}
