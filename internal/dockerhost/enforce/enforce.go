// Package enforce assembles what the authorization plugin and the gateway
// share before either serves: the inventory client certificates are
// checked against (this host's, the fleet CA's revocation list, or both),
// the fleet follower, the audit trail, the owners' book and the host paths
// no role but admin may mount, as one authz.Config. Both front ends build
// it here, so that a policy decision cannot depend on which one asked, and
// a test can build it without running a command.
package enforce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/revlist"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// OwnersFile, in the state directory, is the enforcement point's record
// of who created which container, volume, network and exec
// (authz.Registry), 0600.
const OwnersFile = "authz-owners.json"

// Options are the settings of 'authz serve' and 'gateway serve' that
// Open reads.
type Options struct {
	// StateDir is the CA host's (or enrolled host's) state directory.
	StateDir string
	// Policy is the policy file; PolicyOptional makes a missing one the
	// built-in policy (followed: written later, it is loaded).
	Policy         string
	PolicyOptional bool
	Mode           authz.Mode
	// AuditLog is the trail's file ("" or "-": Out only).
	AuditLog     string
	AuditFailure authz.AuditFailure
	AuditFsync   bool
	// CAURL is the online CA whose revocation list is followed; "" reads
	// it from the host's server.json (none: no fleet).
	CAURL      string
	CRLRefresh time.Duration
	// DaemonJSON is dockerd's configuration (its socket, data root and
	// the paths no role but admin may mount); Docker its socket
	// ("unix://PATH"), when not daemon.json's.
	DaemonJSON, Docker string
	// Protect are more host paths no role but admin may mount (the
	// plugin's socket directory).
	Protect []string
	// Out gets a copy of every audit record (journald's under systemd);
	// Log the operational messages, each line prefixed with LogPrefix.
	Out, Log  io.Writer
	LogPrefix string
	Now       func() time.Time
}

// ErrNoFleetCA is Open's error on a host that follows an online CA but
// holds no certificate of it to check the list against.
var ErrNoFleetCA = errors.New("no fleet CA certificate")

// Enforcement is an assembled configuration and what must be closed
// after it.
type Enforcement struct {
	// Config is the engine's configuration (authz.NewEngine,
	// authz.NewPlugin).
	Config authz.Config
	// Follower follows the online CA's revocation list; nil without one.
	Follower *revlist.Follower
	local    *authority.LazyReader
	audit    *authz.AuditLog
}

// Open assembles the configuration; the caller closes it. Warnings (a
// server.json that cannot be read, an inventory not readable yet) go to
// o.Log: they deny, they do not stop the start.
func Open(o Options) (*Enforcement, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.LogPrefix == "" {
		o.LogPrefix = "dtls-authz: "
	}
	fol, err := follower(o)
	if err != nil {
		return nil, err
	}
	e := &Enforcement{Follower: fol}
	var inv authz.Inventory
	e.local, inv = inventory(o, fol)
	if e.audit, err = openAudit(o); err != nil {
		e.Close()
		return nil, err
	}
	objects, protected, err := objects(o)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.Config = authz.Config{
		PolicyPath:     o.Policy,
		PolicyOptional: o.PolicyOptional,
		Inventory:      inv,
		Mode:           o.Mode,
		Audit:          e.audit,
		AuditFailure:   o.AuditFailure,
		Log:            o.Log,
		LogPrefix:      o.LogPrefix,
		Now:            o.Now,
		Objects:        objects,
		Protected:      protected,
	}
	return e, nil
}

// Start starts the fleet follower, if any, until ctx ends: before
// serving, so that a kept list is in force from the first call; the
// first fetch runs in the background, and until a list is in force the
// fleet's certificates are denied.
func (e *Enforcement) Start(ctx context.Context) {
	if e.Follower != nil {
		e.Follower.Start(ctx)
	}
}

// Close closes the follower, the trail and the inventory.
func (e *Enforcement) Close() {
	if e.Follower != nil {
		e.Follower.Close()
	}
	if e.audit != nil {
		e.audit.Close()
	}
	if e.local != nil {
		e.local.Close()
	}
}

// follower follows the online CA this host was enrolled with (or
// o.CAURL); nil on a host of no online CA.
func follower(o Options) (*revlist.Follower, error) {
	url := o.CAURL
	if url == "" {
		srv, err := authority.ReadServer(o.StateDir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil
		case err != nil:
			// Not fatal: the engine then knows no certificate of the
			// fleet and denies them all (closed).
			fmt.Fprintf(o.Log, "dtls: warning: %v: not following an online CA's revocation list (--ca-url names one)\n", err)
			return nil, nil
		}
		if url = srv.CAURL; url == "" {
			return nil, nil
		}
	}
	caPath := filepath.Join(o.StateDir, authority.CACertFile)
	if _, err := os.Stat(caPath); errors.Is(err, fs.ErrNotExist) {
		// A host enrolled with an online CA is no CA itself: the fleet
		// CA's certificate is the daemon's ca.pem, the one dockerd checks
		// client certificates with (tlscacert).
		if srv, err := authority.ReadServer(o.StateDir); err == nil && srv.CertsDir != "" {
			caPath = filepath.Join(srv.CertsDir, authority.CACertFile)
		}
	}
	b, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("%w: the fleet CA's certificate, to check the revocation list of %s against: %w", ErrNoFleetCA, url, err)
	}
	cas, err := pki.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("the fleet CA's certificate %q: %w", caPath, err)
	}
	return revlist.New(revlist.Config{
		URL: url,
		CAs: cas,
		// Rewritten by 'dtls renew --server' during a rotation of the
		// online CA: followed without a restart.
		CAFile:   caPath,
		Interval: o.CRLRefresh,
		CacheDir: o.StateDir,
		Now:      o.Now,
		// One write per line: os.Stderr, under journald, takes each
		// whole.
		Logf: func(format string, a ...any) { fmt.Fprintf(o.Log, o.LogPrefix+format+"\n", a...) },
	})
}

// FollowerNote says which list a follower follows, for the start's log.
func FollowerNote(fol *revlist.Follower, stateDir string) string {
	return fmt.Sprintf("following the revocation list of the CA at %s (every %s, kept in %s)",
		fol.URL(), fleet.Duration(fol.Interval()), filepath.Join(stateDir, revlist.CacheFile))
}

// inventory is the inventory certificates are checked against: this
// host's, the fleet CA's revocation list, or both. The host's is opened
// on first use and again after a failure: while it cannot be read the
// engine answers and denies every TCP request, saying why (fail closed),
// and follows it once it can.
func inventory(o Options, fol *revlist.Follower) (*authority.LazyReader, authz.Inventory) {
	local := authority.NewLazyReader(o.StateDir)
	var inv authz.Inventory = local
	// A host enrolled with an online CA has no inventory of its own,
	// unless it is also a CA: then the certificates it issued are
	// checked there, the fleet CA's against the CA's list.
	_, noDB := os.Stat(filepath.Join(o.StateDir, authority.DBFile))
	if fol != nil {
		fi := revlist.Inventory{Fleet: fol}
		if noDB == nil {
			fi.Local = local
		}
		inv = fi
	}
	if r, err := authority.OpenReader(o.StateDir); err == nil {
		r.Close()
	} else if fol == nil {
		fmt.Fprintf(o.Log, "dtls: warning: %v: every TCP request is denied until it can be read\n", err)
	} else if noDB == nil {
		fmt.Fprintf(o.Log, "dtls: warning: %v: certificates not from the fleet CA are denied until it can be read\n", err)
	}
	return local, inv
}

// openAudit opens the trail ("" or "-": Out only).
func openAudit(o Options) (*authz.AuditLog, error) {
	path := o.AuditLog
	if path == "-" {
		path = ""
	} else if _, err := os.Stat(filepath.Dir(path)); errors.Is(err, fs.ErrNotExist) {
		// /var/log/dtls on a first start: root's only, as the trail
		// names every user and what they did.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("--audit-log %q: %w", path, err)
		}
	}
	// 64 MiB files, eight kept: 576 MiB of trail. A caller's records are
	// bounded in rate (authz denials.go), so that pushing the trail out
	// takes an hour of calls at the bound rather than seconds; a size
	// in the tens of MiB let a developer do it in minutes (a third red
	// team round).
	l, err := authz.OpenAuditLog(path, 64<<20, 8, o.Out)
	if err == nil {
		l.SyncEachRecord(o.AuditFsync)
	}
	return l, err
}

// objects opens the owners' book and the connection to dockerd for
// lookups, and lists the host paths of dtls and dockerd that no role but
// admin may mount.
func objects(o Options) (*authz.Registry, []string, error) {
	dp, err := authz.ReadDaemonPaths(o.DaemonJSON)
	if err != nil {
		return nil, nil, err
	}
	sock := strings.TrimPrefix(o.Docker, "unix://")
	if sock == "" {
		sock = dp.Socket
	}
	book := filepath.Join(o.StateDir, OwnersFile)
	reg, note, err := authz.OpenRegistryKept(book, authz.NewDockerClient(sock), o.Now())
	if err != nil {
		return nil, nil, err
	}
	if note != "" {
		fmt.Fprintf(o.Log, "dtls: warning: %s\n", note)
	}
	protected := append([]string{o.StateDir, filepath.Dir(o.AuditLog), o.Policy, o.DaemonJSON}, o.Protect...)
	return reg, append(protected, dp.Protected...), nil
}
