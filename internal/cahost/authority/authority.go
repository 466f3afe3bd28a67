// Package authority owns a dtls CA host: the state directory (the CA, its
// inventory, the journal and the lock), and the operations that change it
// (init, issue, renew, revoke, CRL, the three steps of rotate-ca). Every
// operation takes its clock and options, returns what it did, and never
// prints or exits: the dtls command line renders the results, and a
// long-running component (an authorization plugin, an online CA) uses the
// same code.
//
// The rules of the CA (revocation, the revocation list, a rotation's
// steps, issuing and its records) are package engine's, shared with the
// online CA's server (package caserver): this package is their face on
// the CA host's state directory.
//
// Every change that touches more than one file, or a file and the
// inventory, goes through one journal (engine.Journal): a run killed at any
// instant leaves a state that the next run finishes, and a step that fails
// is undone at once.
package authority

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/engine"
)

// Default locations. The CA key lives in the state directory, never in the
// daemon's certs directory: dockerd needs only ca.pem, server-cert.pem and
// server-key.pem, and whoever can read the CA key can mint root access.
const (
	DefaultStateDir   = "/var/lib/dtls"
	DefaultCertsDir   = "/etc/docker/certs"
	DefaultDaemonJSON = "/etc/docker/daemon.json"
	DefaultListen     = "tcp://0.0.0.0:2376"
)

// File names in the state directory and the daemon's certs directory.
const (
	CACertFile     = engine.CACertFile
	CAKeyFile      = engine.CAKeyFile
	ServerCertFile = "server-cert.pem"
	ServerKeyFile  = "server-key.pem"
	ServerRecord   = "server.json"
	CRLFile        = "crl.pem"
	DBFile         = "dtls.db"
	LockFile       = engine.LockFile
	JournalDir     = engine.JournalDir
	// During a CA rotation the CA being replaced stays in the state
	// directory under these names until the rotation is finished.
	OldCACertFile = "ca-old.pem"
	OldCAKeyFile  = "ca-old-key.pem"
	// IssuedDir held a copy of every certificate before the inventory
	// database existed; it is imported on the database's first use.
	IssuedDir = "issued"
)

// Modes. Keys are 0400 (CIS Docker Benchmark 3.14 expects exactly 400 for
// the server key; the CA key is no less sensitive), certificates 0444 (CIS
// 3.10, 3.12), the state directory and bundles 0700. A new certs directory
// is 0755, as Docker's packages make /etc/docker.
const (
	KeyMode      fs.FileMode = 0o400
	CertMode     fs.FileMode = 0o444
	DirMode      fs.FileMode = engine.StateDirMode
	MetaMode     fs.FileMode = 0o644
	CertsDirMode fs.FileMode = 0o755
	// RecordMode is for server.json and the journal: root's business.
	RecordMode fs.FileMode = 0o600
)

// Error is an error with the command that fixes it (age's errorWithHint).
type Error = engine.Error

func hint(err error, format string, a ...any) error {
	return &Error{Err: err, Hint: fmt.Sprintf(format, a...)}
}

// Server is what init records about the daemon on this host
// (STATE_DIR/server.json): where clients reach it and where its files are.
type Server struct {
	DockerHost string    `json:"docker_host"`
	Listen     string    `json:"listen"`
	Hosts      []string  `json:"hosts"`
	CertsDir   string    `json:"certs_dir"`
	DaemonJSON string    `json:"daemon_json"`
	Updated    time.Time `json:"updated"`
	// CAURL is the online CA the host enrolled with (`dtls init --ca-url`),
	// empty for a host that is its own CA. The authorization plugin follows
	// that CA's revocation list, and renewals go through it.
	CAURL string `json:"ca_url,omitempty"`
	// Mode is ModeGateway when the dtls gateway serves the TCP listener
	// (init --gateway), "" when dockerd does.
	Mode string `json:"mode,omitempty"`
	// Local is true after init --local: dockerd's socket is root's alone
	// and the host's accounts use the gateway's; LocalGroup is the group
	// the socket had before ("" for dockerd's default, docker), given
	// back when init runs without --local.
	Local      bool   `json:"local,omitempty"`
	LocalGroup string `json:"local_group,omitempty"`
}

// ReadServer reads STATE_DIR/server.json.
func ReadServer(stateDir string) (*Server, error) {
	p := filepath.Join(stateDir, ServerRecord)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var s Server
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	return &s, nil
}

// RecordedHosts is the names the last init issued this host's server
// certificate for (server.json), else DefaultHosts when there is no
// record or it names none: the names an audit of this host checks the
// certificate against.
func RecordedHosts(stateDir string) []string {
	if srv, err := ReadServer(stateDir); err == nil && len(srv.Hosts) > 0 {
		return srv.Hosts
	}
	return DefaultHosts()
}

// RecordedCAURL is the online CA this host enrolled with (server.json's
// ca_url), or "" for a host that is its own CA or has no record.
func RecordedCAURL(stateDir string) string {
	if srv, err := ReadServer(stateDir); err == nil {
		return srv.CAURL
	}
	return ""
}

// Within reports whether path is dir or inside it, comparing the paths as
// they resolve (symbolic links followed as far as they exist), so that a
// link cannot hide an overlap.
func Within(path, dir string) bool {
	path, dir = Resolve(path), Resolve(dir)
	rel, err := filepath.Rel(dir, path)
	return err == nil && (rel == "." || !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != "..")
}

// Resolve returns path with every symbolic link in its longest existing
// prefix resolved; the part that does not exist yet is appended as it is.
func Resolve(path string) string {
	path = filepath.Clean(path)
	rest := ""
	for p := path; ; {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
