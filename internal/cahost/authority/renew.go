package authority

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/pki"
)

// RenewRequest says what to renew: one name, this host's server
// certificate, or everything in use that expires within a window.
type RenewRequest struct {
	Name     string
	Server   bool
	Expiring time.Duration
	// Out writes Name's renewed bundle to another directory.
	Out string
	// Validity of the new certificates; zero keeps the old one's.
	Validity time.Duration
	// Archive, with Name, also writes the renewed client bundle as one
	// tar.gz (0600) for 'dtls import', in the same change.
	Archive string
	// ArchiveOnly, with Archive, writes the renewed client bundle only
	// there: no bundle directory is written, and the new record has no
	// path (renew --archive without --out).
	ArchiveOnly bool
	Force       bool // replace an existing Archive
	Now         time.Time
}

// RenewResult is what Renew did.
type RenewResult struct {
	Renewed []*Issued
	// Skipped are certificates within the window that have no recorded
	// bundle path.
	Skipped []store.Record
	// ServerRenewed is true when this host's server certificate was
	// renewed: dockerd must be restarted to serve it (moby#23936).
	ServerRenewed bool
}

// Renew issues a fresh key and certificate with the same common name, host
// names and key type as each certificate it replaces, from the current CA
// (a server certificate at step 1 of a rotation from the old one), writes
// it where the old one was, and marks the old one superseded, all in one
// change.
func (a *Authority) Renew(r RenewRequest) (*RenewResult, error) {
	ca, err := a.CA()
	if err != nil {
		return nil, err
	}
	srv, _ := a.Server()
	rn := &renewal{a: a, r: r, ca: ca, srv: srv, t: newTxn("renew"), res: &RenewResult{}}
	if srv != nil {
		rn.localCert = filepath.Join(srv.CertsDir, ServerCertFile)
	}
	targets, err := rn.targets()
	if err != nil {
		return nil, err
	}
	if r.Archive != "" {
		if r.Name == "" || len(targets) != 1 || targets[0].Kind != store.KindClient {
			return nil, fmt.Errorf("--archive %q: only a client's bundle is archived: renew one client NAME", r.Archive)
		}
		if err := CheckArchiveTarget(r.Archive, r.Force); err != nil {
			return nil, err
		}
	}
	for _, rec := range targets {
		if err := rn.renew(rec); err != nil {
			return nil, err
		}
	}
	res, t := rn.res, rn.t
	if r.Archive != "" {
		b, err := bundle.MarshalArchive(res.Renewed[0].files)
		if err != nil {
			return nil, err
		}
		t.Write(r.Archive, b, 0o600)
	}
	addRecords(t, res.Renewed)
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return res, nil
}

// renewal is one run of Renew: what it renews from, the change it builds
// (t) and its result.
type renewal struct {
	a   *Authority
	r   RenewRequest
	ca  *pki.CA
	srv *Server
	// localCert is this host's server certificate ("" when there is no
	// server).
	localCert string
	t         *txn
	res       *RenewResult
	// srvCA signs server certificates: the old CA at step 1 of a
	// rotation (rotate.go), loaded only when one is renewed.
	srvCA *pki.CA
}

func (rn *renewal) serverCA() (*pki.CA, error) {
	var err error
	if rn.srvCA == nil {
		rn.srvCA, err = rn.a.serverCA()
	}
	return rn.srvCA, err
}

// targets are the records to renew: the newest of r.Name, this host's
// server certificate, or every good one that expires within r.Expiring
// (those without a bundle path go to res.Skipped).
func (rn *renewal) targets() ([]store.Record, error) {
	switch {
	case rn.r.Name != "":
		return rn.named()
	case rn.r.Server:
		return rn.server()
	}
	good, err := rn.a.Store.ByStatus(store.StatusGood)
	if err != nil {
		return nil, err
	}
	var targets []store.Record
	for _, rec := range good {
		if rec.Kind != store.KindCA && rec.NotAfter.Before(rn.r.Now.Add(rn.r.Expiring)) {
			if rec.Path == "" {
				rn.res.Skipped = append(rn.res.Skipped, rec)
				continue
			}
			targets = append(targets, rec)
		}
	}
	return targets, nil
}

// named is the newest certificate called r.Name, to be written to r.Out
// when it is given.
func (rn *renewal) named() ([]store.Record, error) {
	r := rn.r
	named, err := rn.a.Store.ByName(r.Name)
	if err != nil {
		return nil, err
	}
	named = dropKind(named, store.KindCA)
	if len(named) == 0 {
		return nil, hint(fmt.Errorf("no certificate named %q", r.Name), "run 'dtls list' to see names")
	}
	last := newest(named)
	if last.Status == store.StatusRevoked {
		return nil, hint(fmt.Errorf("certificate %q (serial %s) is revoked: a revoked certificate is not renewed", last.Name, last.Serial),
			"issue a new one if access is to be given back: dtls issue-client %s --force", last.Name)
	}
	if r.Out != "" && r.Out != last.Path {
		// Another directory than the bundle's: nothing there is
		// replaced (renew has no --force).
		if err := rn.a.CheckBundleTarget(r.Out, last.Name, false); err != nil {
			return nil, err
		}
		last.Path = r.Out
	}
	return []store.Record{last}, nil
}

// server is this host's server certificate, as its file holds it.
func (rn *renewal) server() ([]store.Record, error) {
	localCert := rn.localCert
	if localCert == "" {
		return nil, hint(fmt.Errorf("no server recorded in %q", rn.a.Dir), "run 'dtls init' first")
	}
	b, err := os.ReadFile(localCert)
	if err != nil {
		return nil, hint(fmt.Errorf("read server certificate: %w", err), "run 'dtls init' to issue one")
	}
	c, err := pki.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("read server certificate %q: %w", localCert, err)
	}
	return []store.Record{store.FromCert(c, b, store.KindServer, "", localCert)}, nil
}

// renew issues the successor of rec, adds its files to the change and
// appends it to res.Renewed.
func (rn *renewal) renew(rec store.Record) error {
	r := rn.r
	old, err := rec.Cert()
	if err != nil {
		return fmt.Errorf("renew %q serial %s: %w", rec.Name, rec.Serial, err)
	}
	validity := r.Validity
	if validity == 0 {
		validity = old.NotAfter.Sub(old.NotBefore) - 5*time.Minute
	}
	// The daemon URL of the bundle it replaces, read before an
	// archive-only renewal drops the bundle's path.
	dockerHost := bundleDockerHost(rec.Path, rn.srv)
	if r.ArchiveOnly && rec.Kind == store.KindClient {
		rec.Path = ""
	}
	if rec.Path != "" && rec.Path != rn.localCert {
		// A bundle is replaced whole: never a directory that is not
		// one, nor another holder's, whatever path the record holds.
		if err := rn.a.CheckBundleTarget(rec.Path, rec.Name, true); err != nil {
			return err
		}
	}
	it, err := rn.issue(rec, old, dockerHost, validity)
	if err != nil {
		return err
	}
	replaced := rec
	it.Replaced = &replaced
	it.Supersedes = rec.Serial
	rn.res.Renewed = append(rn.res.Renewed, it)
	return nil
}

// issue issues rec's successor with old's key type (and host names, for a
// server) and adds its files to the change: a client's bundle, this
// host's server key and certificate, or another server's bundle.
func (rn *renewal) issue(rec store.Record, old *x509.Certificate, dockerHost string, validity time.Duration) (*Issued, error) {
	r, t := rn.r, rn.t
	kt := pki.KeyTypeOf(old)
	var it *Issued
	var err error
	switch {
	case rec.Kind == store.KindClient:
		if rec.Path == "" && !r.ArchiveOnly {
			return nil, hint(fmt.Errorf("no bundle path recorded for %q (serial %s)", rec.Name, rec.Serial), "pass --out DIR or --archive FILE")
		}
		it, err = rn.a.newClient(rn.ca, rec.Name, rec.Path, dockerHost, kt, r.Now, validity)
		if err == nil && it.Dir != "" {
			t.Bundle(it.Dir, it.files)
		}
	case rec.Path == rn.localCert:
		var s *pki.Issued
		var sca *pki.CA
		var srec store.Record
		if sca, err = rn.serverCA(); err == nil {
			s, srec, err = engine.Issue(sca, pki.Request{Kind: pki.KindServer, CommonName: rec.Name, Hosts: pki.Hosts(old), KeyType: kt, Now: r.Now, Validity: validity}, rn.localCert)
		}
		if err == nil {
			it = &Issued{Record: srec, Path: rn.localCert}
			t.Write(filepath.Join(rn.srv.CertsDir, ServerKeyFile), s.KeyPEM, KeyMode)
			t.Write(rn.localCert, s.CertPEM, CertMode)
			rn.res.ServerRenewed = true
		}
	default:
		var sca *pki.CA
		if sca, err = rn.serverCA(); err == nil {
			it, err = rn.a.newServerBundle(sca, rec.Name, pki.Hosts(old), rec.Path, kt, r.Now, validity)
		}
		if err == nil {
			t.Bundle(it.Dir, it.files)
		}
	}
	return it, err
}

func dropKind(recs []store.Record, k store.Kind) []store.Record {
	out := recs[:0:0]
	for _, r := range recs {
		if r.Kind != k {
			out = append(out, r)
		}
	}
	return out
}

// newest returns the newest good record, or the newest of all when none is
// good.
func newest(recs []store.Record) store.Record {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].NotBefore.After(recs[j].NotBefore) })
	for _, r := range recs {
		if r.Status == store.StatusGood {
			return r
		}
	}
	return recs[0]
}

// bundleDockerHost is the daemon URL of an existing bundle, or the one
// init recorded.
func bundleDockerHost(dir string, srv *Server) string {
	if dir == "" {
		// An archive-only bundle: nothing here to read (and "" would
		// read ./dtls.json).
		if srv != nil {
			return srv.DockerHost
		}
		return ""
	}
	if b, err := os.ReadFile(filepath.Join(dir, clientenv.MetaFile)); err == nil {
		var m struct {
			DockerHost string `json:"docker_host"`
		}
		if json.Unmarshal(b, &m) == nil && strings.HasPrefix(m.DockerHost, "tcp://") {
			return m.DockerHost
		}
	}
	if srv != nil {
		return srv.DockerHost
	}
	return ""
}
