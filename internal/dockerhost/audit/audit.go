// Package audit checks a Docker host against the socket and TLS rules that
// dtls is built on: who can reach the daemon's socket, how the daemon
// listens (daemon.json and the systemd unit's flags), the ownership and
// modes of its configuration, certificates and keys, the certificates
// themselves, and what the running daemon says about itself and its
// containers through the Engine API.
//
// It is a library: Run returns a Report and prints nothing. Each Finding
// carries the CIS Docker Benchmark id where one exists; the ids are those of
// docker-bench-security, which follows CIS Docker Benchmark v1.6.0. What
// cannot be checked (a file the caller may not read, a daemon that does not
// answer) is a SKIP finding that says why, never an error.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Status is the outcome of one check.
type Status string

// Statuses, from best to worst; SKIP means the check could not be made.
const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Finding is the result of one check.
type Finding struct {
	// ID names the check, e.g. "socket-mode"; stable across releases.
	ID string `json:"id"`
	// CIS is the CIS Docker Benchmark v1.6.0 recommendation, e.g. "3.16",
	// or "" when the check has none.
	CIS    string `json:"cis,omitempty"`
	Status Status `json:"status"`
	// Title says what was found, in one line.
	Title string `json:"title"`
	// Detail says why it matters, or what could not be checked and why.
	Detail string `json:"detail,omitempty"`
	// Fix is the command (or the change) that fixes a WARN or FAIL.
	Fix string `json:"fix,omitempty"`
}

// Summary counts the findings by status.
type Summary struct {
	Pass int `json:"pass"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
}

// Report is the result of Run.
type Report struct {
	Findings []Finding `json:"findings"`
	Summary  Summary   `json:"summary"`
}

// Failed reports whether any finding is a FAIL.
func (r Report) Failed() bool { return r.Summary.Fail > 0 }

// Config says what to audit. Every path is explicit so that tests can point
// the audit at temporary directories; the command layer supplies the host's
// defaults.
type Config struct {
	// DaemonJSON is dockerd's configuration file, normally
	// /etc/docker/daemon.json. Empty: not checked.
	DaemonJSON string
	// CertsDir is the daemon's certs directory: when set, the CA
	// certificate, server certificate and key are read from it, under the
	// base names daemon.json gives them ("tlscacert", "tlscert",
	// "tlskey"), else ca.pem, server-cert.pem and server-key.pem, whatever
	// directory daemon.json names. Empty: the files daemon.json names,
	// else those names in /etc/docker/certs.
	CertsDir string
	// StateDir is dtls's state directory, holding the CA key. Empty: not
	// checked.
	StateDir string
	// SystemdDirs are searched for docker.service and its drop-ins
	// (daemonconfig.FindUnit). Empty: the unit is not read.
	SystemdDirs []string
	// Socket is the daemon's unix socket. Empty: the first unix:// entry of
	// the daemon's hosts, else /var/run/docker.sock.
	Socket string
	// DockerHost is where the Engine API is asked: unix:///path or
	// tcp://host:port (plain HTTP; use it for a loopback listener or a
	// proxy). Empty: unix://Socket.
	DockerHost string
	// CertPath, with a tcp:// DockerHost, is a client bundle directory
	// (ca.pem, cert.pem, key.pem, as for DOCKER_CERT_PATH): the daemon is
	// asked over mutual TLS, and the server certificate it presents is
	// checked against the bundle's ca.pem. Empty: plain HTTP.
	CertPath string
	// Remote says that the daemon at DockerHost (tcp://) is not on this
	// machine: only what it shows over the network is checked (its
	// version, security options and containers, the certificate it
	// presents), and every check of this machine's files is reported once,
	// first, as a SKIP: a laptop's own /etc/docker, socket or users say
	// nothing about the Docker host.
	Remote bool
	// Group is the group database, /etc/group when empty.
	Group string
	// Passwd is the user database, /etc/passwd when empty: users whose
	// primary group is docker can use the socket too.
	Passwd string
	// Now is the time certificates are checked at; time.Now when zero.
	Now time.Time
	// ExpiryWarning: a certificate expiring sooner than this is a WARN.
	ExpiryWarning time.Duration
	// Hosts are the names and addresses clients use to reach this daemon;
	// the server certificate must cover each. Empty: not checked.
	Hosts []string
	// CAURL is the online CA this host enrolled with (server.json's
	// ca_url). When set, the revocation list the authorization plugin
	// follows is checked (StateDir/fleet-crl.json: a list it cannot
	// refresh is a WARN, then a FAIL after three fetch intervals). Empty:
	// not checked (the host is its own CA).
	CAURL string
	// Gateway says that server.json records gateway mode ('dtls init
	// --gateway'): the gateway's socket unit must then be installed, or
	// nothing serves TCP.
	Gateway bool

	// AuditdRulesDir holds auditd's *.rules files, read when Auditctl is
	// empty or does not answer. Auditctl is auditctl(8), run with -l for
	// the rules loaded in the kernel. Both empty: auditd is not checked.
	AuditdRulesDir string
	Auditctl       string
	// BinDirs are searched for dockerd, containerd, its shims and runc.
	// Empty: $PATH, then the usual bin and sbin directories.
	BinDirs []string
	// OwnFiles are dtls's state, certificates and policy, which auditd
	// should watch too.
	OwnFiles []OwnFile
	// AuditLog is the authorization plugin's audit trail. Empty: not
	// checked.
	AuditLog string
}

// Default paths.
const (
	DefaultSocket   = "/var/run/docker.sock"
	DefaultCertsDir = "/etc/docker/certs"
	DefaultGroup    = "/etc/group"
	DefaultPasswd   = "/etc/passwd"
)

// auditor collects findings.
type auditor struct {
	cfg      Config
	findings []Finding
}

func (a *auditor) add(f Finding) { a.findings = append(a.findings, f) }

// Run audits the host described by cfg. It never fails: whatever cannot be
// checked becomes a SKIP finding. ctx bounds the Engine API calls.
func Run(ctx context.Context, cfg Config) Report {
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	if cfg.Passwd == "" {
		cfg.Passwd = DefaultPasswd
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	a := &auditor{cfg: cfg}

	if cfg.Remote {
		if len(a.cfg.Hosts) == 0 {
			// The name clients dial is the one the certificate must
			// cover.
			if u, err := url.Parse(cfg.DockerHost); err == nil && u.Hostname() != "" {
				a.cfg.Hosts = []string{u.Hostname()}
			}
		}
		a.add(Finding{ID: "host-checks", Status: Skip,
			Title: fmt.Sprintf("host checks skipped: the daemon at %s is audited over the network", cfg.DockerHost),
			Detail: "daemon.json and docker.service (TCP listeners, TLS, flag conflicts), the socket and group docker, " +
				"the owners and modes of the configuration, certificates and keys, and the CA key can only be checked on the Docker host",
			Fix: "on the Docker host: sudo dtls audit"})
		a.checkEngine(ctx, &daemonConf{})
		return a.report()
	}
	dc := a.checkDaemonConfig()
	if a.cfg.Socket == "" {
		a.cfg.Socket = dc.socket()
	}
	if a.cfg.DockerHost == "" {
		a.cfg.DockerHost = "unix://" + a.cfg.Socket
	}
	a.checkSocket()
	a.checkFiles(dc)
	a.checkCerts(dc)
	a.checkFleetCRL(dc)
	a.checkHostAudit(dc)
	a.checkEngine(ctx, dc)
	return a.report()
}

// report counts the findings.
func (a *auditor) report() Report {
	r := Report{Findings: a.findings}
	for _, f := range a.findings {
		switch f.Status {
		case Pass:
			r.Summary.Pass++
		case Warn:
			r.Summary.Warn++
		case Fail:
			r.Summary.Fail++
		case Skip:
			r.Summary.Skip++
		}
	}
	return r
}

// why turns an error reading a path into the reason of a SKIP.
func why(path string, err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s: permission denied (run dtls audit as root to check it)", path)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist", path)
	}
	return err.Error()
}

// fileRule is the ownership and mode a file must have.
type fileRule struct {
	what            string // "daemon.json", "server key"
	idOwner, idMode string
	cisOwner        string
	cisMode         string
	// maxMode is the loosest mode allowed: no bit outside it may be set.
	maxMode fs.FileMode
	// exact requires exactly maxMode (CIS 3.14 wants 400 for the key).
	exact bool
}

// checkFile checks a file's owner (root:root) and mode against rule. It
// returns false when the file could not be examined.
func (a *auditor) checkFile(path string, r fileRule) bool {
	fi, err := os.Stat(path)
	if err != nil {
		reason := why(path, err)
		a.add(Finding{ID: r.idOwner, CIS: r.cisOwner, Status: Skip, Title: r.what + " ownership not checked", Detail: reason})
		a.add(Finding{ID: r.idMode, CIS: r.cisMode, Status: Skip, Title: r.what + " permissions not checked", Detail: reason})
		return false
	}
	uid, gid, ok := owner(fi)
	switch {
	case !ok:
		a.add(Finding{ID: r.idOwner, CIS: r.cisOwner, Status: Skip, Title: r.what + " ownership not checked", Detail: "no owner information on this platform"})
	case uid == 0 && gid == 0:
		a.add(Finding{ID: r.idOwner, CIS: r.cisOwner, Status: Pass, Title: fmt.Sprintf("%s %s is owned by root:root", r.what, path)})
	default:
		a.add(Finding{ID: r.idOwner, CIS: r.cisOwner, Status: Fail,
			Title:  fmt.Sprintf("%s %s is owned by %d:%d, not root:root", r.what, path, uid, gid),
			Detail: "whoever owns it can change how dockerd trusts clients, or read what it holds",
			Fix:    "chown root:root " + path})
	}
	perm := fi.Mode().Perm()
	loose := perm&^r.maxMode != 0 || (r.exact && perm != r.maxMode)
	want := fmt.Sprintf("%04o or stricter", r.maxMode)
	if r.exact {
		want = fmt.Sprintf("exactly %04o", r.maxMode)
	}
	if loose {
		a.add(Finding{ID: r.idMode, CIS: r.cisMode, Status: Fail,
			Title: fmt.Sprintf("%s %s has mode %04o, want %s", r.what, path, perm, want),
			Fix:   fmt.Sprintf("chmod %o %s", r.maxMode, path)})
	} else {
		a.add(Finding{ID: r.idMode, CIS: r.cisMode, Status: Pass, Title: fmt.Sprintf("%s %s has mode %04o", r.what, path, perm)})
	}
	return true
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && (rel == "." || len(rel) < 3 || rel[:3] != "../")
}
