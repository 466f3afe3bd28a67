package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dtls-tool/dtls/atomicfile"
)

// Default locations. The CA key lives in the state directory, never in the
// daemon's certs directory: dockerd needs only ca.pem, server-cert.pem and
// server-key.pem, and whoever can read the CA key can mint root access.
const (
	defaultStateDir   = "/var/lib/dtls"
	defaultCertsDir   = "/etc/docker/certs"
	defaultDaemonJSON = "/etc/docker/daemon.json"
	defaultListen     = "tcp://0.0.0.0:2376"
)

// File names and modes. Keys are 0400 (CIS Docker Benchmark 3.14 expects
// exactly 400 for the server key; the CA key is no less sensitive),
// certificates 0444 (CIS 3.10, 3.12), the state directory 0700.
const (
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server-cert.pem"
	serverKeyFile  = "server-key.pem"
	serverRecord   = "server.json"
	// issuedDir held a copy of every certificate before the database
	// (dtls.db) existed; it is imported on the database's first use.
	issuedDir = "issued"

	keyMode  fs.FileMode = 0o400
	certMode fs.FileMode = 0o444
	dirMode  fs.FileMode = 0o700
	metaMode fs.FileMode = 0o644
)

// server is what init records for issue-client: where clients reach the
// daemon.
type server struct {
	DockerHost string    `json:"docker_host"`
	Listen     string    `json:"listen"`
	Hosts      []string  `json:"hosts"`
	CertsDir   string    `json:"certs_dir"`
	DaemonJSON string    `json:"daemon_json"`
	Updated    time.Time `json:"updated"`
}

// checkStateDir refuses a state directory that someone else could read or
// write: it holds the CA key. It returns fs.ErrNotExist (wrapped) when the
// directory does not exist yet.
func checkStateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state directory %q does not exist: %w", dir, err)
		}
		return fmt.Errorf("state directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %q is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return withHint(fmt.Errorf("state directory %q is owned by uid %d, not by uid %d running dtls", dir, st.Uid, os.Geteuid()),
			"run dtls as the directory's owner (sudo), or chown it")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return withHint(fmt.Errorf("state directory %q has mode %04o: others could read the CA key", dir, perm),
			"chmod 700 %s", dir)
	}
	// Lstat and the owner check pass for root even when the directory is
	// unreadable through an ACL or a read-only mount: try it.
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("state directory %q: %w", dir, err)
	}
	f.Close()
	return nil
}

func readServer(stateDir string) (*server, error) {
	p := filepath.Join(stateDir, serverRecord)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var s server
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	return &s, nil
}

func writeJSON(path string, v any, mode fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), mode)
}

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

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "..")
}

// ensureMode tightens an existing file's mode and says so; a file's mode is
// part of its security (CIS Docker Benchmark 3.9-3.14).
func ensureMode(path string, mode fs.FileMode, report func(string, ...any)) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != mode {
		if err := os.Chmod(path, mode); err != nil {
			return fmt.Errorf("chmod %q: %w", path, err)
		}
		report("fixed mode of %s: %04o -> %04o", path, fi.Mode().Perm(), mode)
	}
	return nil
}

// During 'dtls rotate-ca' the CA being replaced stays in the state
// directory under these names until 'dtls rotate-ca --finish'.
const (
	oldCACertFile = "ca-old.pem"
	oldCAKeyFile  = "ca-old-key.pem"
)
