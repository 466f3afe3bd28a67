package authority

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/cahost/engine"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/pki"
)

// Bundle file names (the Docker CLI reads ca.pem, cert.pem and key.pem
// from DOCKER_CERT_PATH).
const (
	ClientCertFile = "cert.pem"
	ClientKeyFile  = "key.pem"
)

// bundleFiles are the only files a bundle directory holds: a client
// bundle's and an issue-server bundle's.
var bundleFiles = map[string]bool{
	ClientKeyFile: true, ClientCertFile: true, CACertFile: true, clientenv.MetaFile: true,
	ServerCertFile: true, ServerKeyFile: true,
}

// Issued is one certificate written and recorded.
type Issued struct {
	Record store.Record
	// Dir is the bundle directory, or Path the daemon's
	// server-cert.pem.
	Dir  string
	Path string
	// Supersedes is the serial of the certificate it replaces, if any.
	Supersedes string
	// Replaced is the record it replaces (renew).
	Replaced *store.Record
	// Role is the role the certificate has (its name's; "" for the
	// policy's default), and RoleChange, when set, the change of role
	// issuing it made to the name's other certificates.
	Role       string
	RoleChange *RoleChange
	files      []bundle.File
}

// replacedBundles are the serials of the certificates whose bundles r
// replaces (--force): they are superseded by the new ones.
func (a *Authority) replacedBundles(r ClientRequest) map[string]bool {
	out := map[string]bool{}
	if !r.Force {
		return out
	}
	for _, n := range r.Names {
		if cur := a.bundleRecord(r.Dir(n)); cur != nil {
			out[cur.Serial] = true
		}
	}
	return out
}

// setIssuedRoles records in each issued item the role its certificate
// gets (role, else the one recorded for its name) and the change it makes
// to the name's other certificates.
func (a *Authority) setIssuedRoles(items []*Issued, role string, changes []*RoleChange) error {
	for _, it := range items {
		it.Role = role
		if role == "" {
			cur, err := a.Store.Role(it.Record.Name)
			if err != nil {
				return err
			}
			it.Role = cur
		}
		for _, c := range changes {
			if c.Name == it.Record.Name {
				it.RoleChange = c
			}
		}
	}
	return nil
}

// Files is the bundle as written.
func (i *Issued) Files() []bundle.File { return i.files }

// ClientRequest asks for client bundles, one per name.
type ClientRequest struct {
	Names []string
	// Dir returns the bundle directory of a name; "" writes none: the
	// bundle goes only into Archive (issue-client --archive without
	// --out leaves no copy of the key behind).
	Dir        func(name string) string
	DockerHost string // "" for the one init recorded
	KeyType    pki.KeyType
	Validity   time.Duration
	// Force replaces existing bundle directories (each must hold a
	// bundle of the same name, or nothing).
	Force bool
	// Archive, when set, is also written as one tar.gz (0600) of the
	// first name's bundle, in the same change.
	Archive string
	// Role, when set, is recorded as every name's authorization role in
	// the same change. A name that already holds a good certificate with
	// another role is refused (ErrRoleChange), unless ChangeRole: the role
	// is the name's, so that certificate's role changes too.
	Role       string
	ChangeRole bool
	Now        time.Time
}

// CheckClientTargets checks every bundle directory (and the archive) before
// anything is signed, so that a refusal leaves nothing behind.
func (a *Authority) CheckClientTargets(r ClientRequest) error {
	for _, n := range r.Names {
		if r.Dir(n) == "" {
			continue
		}
		if err := a.CheckBundleTarget(r.Dir(n), n, r.Force); err != nil {
			return err
		}
	}
	if r.Archive != "" {
		return CheckArchiveTarget(r.Archive, r.Force)
	}
	return nil
}

// IssueClients signs a client certificate per name and writes the bundles
// and the records in one change.
func (a *Authority) IssueClients(r ClientRequest) ([]*Issued, error) {
	if r.Role != "" {
		if err := ValidateRole(r.Role); err != nil {
			return nil, err
		}
	}
	if err := a.CheckClientTargets(r); err != nil {
		return nil, err
	}
	ca, err := a.CA()
	if err != nil {
		return nil, err
	}
	dockerHost := r.DockerHost
	if dockerHost == "" {
		srv, err := a.Server()
		if err != nil {
			return nil, hint(fmt.Errorf("no daemon URL recorded in %q: %w", a.Dir, err), "pass --docker-host tcp://HOST:2376, or run 'dtls init' again")
		}
		dockerHost = srv.DockerHost
	}
	if err := a.checkNameFree(r.Names, store.KindClient, r.Now); err != nil {
		return nil, err
	}
	var changes []*RoleChange
	if r.Role != "" {
		var err error
		if changes, err = a.roleChanges(r.Names, r.Role, a.replacedBundles(r), r.Now); err != nil {
			return nil, err
		}
		if len(changes) > 0 && !r.ChangeRole {
			return nil, refuseRoleChanges(changes)
		}
	}
	t := newTxn("issue")
	var out []*Issued
	for _, name := range r.Names {
		dir := r.Dir(name)
		it, err := a.newClient(ca, name, dir, dockerHost, r.KeyType, r.Now, r.Validity)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
		if dir == "" {
			continue
		}
		if r.Force {
			// A replaced bundle's certificate is superseded by the new one.
			if cur := a.bundleRecord(dir); cur != nil {
				it.Supersedes = cur.Serial
			}
		}
		t.Bundle(dir, it.files)
	}
	if r.Archive != "" {
		b, err := bundle.MarshalArchive(out[0].files)
		if err != nil {
			return nil, err
		}
		t.Write(r.Archive, b, 0o600)
	}
	addRecords(t, out)
	if err := a.setIssuedRoles(out, r.Role, changes); err != nil {
		return nil, err
	}
	if r.Role != "" {
		t.DB.Roles = map[string]string{}
		for _, n := range r.Names {
			t.DB.Roles[n] = r.Role
		}
	}
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return out, nil
}

func addRecords(t *txn, items []*Issued) {
	for _, it := range items {
		t.DB.Insert = append(t.DB.Insert, it.Record)
		if it.Supersedes != "" {
			t.DB.Supersede = append(t.DB.Supersede, it.Supersedes)
		}
	}
}

// bundleRecord is the good record whose certificate a bundle directory
// holds, or nil.
func (a *Authority) bundleRecord(dir string) *store.Record {
	for _, f := range []string{ClientCertFile, ServerCertFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		c, err := pki.ParseCertificate(b)
		if err != nil {
			continue
		}
		r, err := a.Store.Get(pki.Serial(c))
		if err == nil && r != nil && r.Status == store.StatusGood {
			return r
		}
	}
	return nil
}

func (a *Authority) newClient(ca *pki.CA, name, dir, dockerHost string, kt pki.KeyType, now time.Time, validity time.Duration) (*Issued, error) {
	cl, rec, err := engine.Issue(ca, pki.Request{Kind: pki.KindClient, CommonName: name, KeyType: kt, Now: now, Validity: validity}, dir)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	meta, err := clientenv.MarshalMeta(clientenv.Meta{
		Name:       name,
		DockerHost: dockerHost,
		Server:     host,
		NotAfter:   cl.Cert.NotAfter.UTC(),
		Serial:     pki.Serial(cl.Cert),
	})
	if err != nil {
		return nil, err
	}
	return &Issued{
		Record: rec,
		Dir:    dir,
		files: []bundle.File{
			{Name: ClientKeyFile, Data: cl.KeyPEM, Mode: KeyMode},
			{Name: ClientCertFile, Data: cl.CertPEM, Mode: CertMode},
			{Name: CACertFile, Data: a.DaemonCAPEM(ca), Mode: CertMode},
			{Name: clientenv.MetaFile, Data: meta, Mode: MetaMode},
		},
	}, nil
}

// ServerBundleRequest asks for a server bundle for another daemon of the
// fleet (issue-server).
type ServerBundleRequest struct {
	Name     string
	Hosts    []string
	Dir      string
	KeyType  pki.KeyType
	Validity time.Duration
	Force    bool
	Now      time.Time
}

// IssueServerBundle signs a server certificate for another daemon and
// writes its bundle (ca.pem, server-cert.pem, server-key.pem).
func (a *Authority) IssueServerBundle(r ServerBundleRequest) (*Issued, error) {
	if err := a.CheckBundleTarget(r.Dir, r.Name, r.Force); err != nil {
		return nil, err
	}
	// The old CA at step 1 of a rotation (rotate.go), so that every
	// bundle, even one that trusts only the old CA, verifies this daemon.
	ca, err := a.serverCA()
	if err != nil {
		return nil, err
	}
	if err := a.checkNameFree([]string{r.Name}, store.KindServer, r.Now); err != nil {
		return nil, err
	}
	it, err := a.newServerBundle(ca, r.Name, r.Hosts, r.Dir, r.KeyType, r.Now, r.Validity)
	if err != nil {
		return nil, err
	}
	if r.Force {
		if cur := a.bundleRecord(r.Dir); cur != nil {
			it.Supersedes = cur.Serial
		}
	}
	t := newTxn("issue-server")
	t.Bundle(r.Dir, it.files)
	addRecords(t, []*Issued{it})
	if err := a.commit(t); err != nil {
		return nil, err
	}
	return it, nil
}

func (a *Authority) newServerBundle(ca *pki.CA, name string, hosts []string, dir string, kt pki.KeyType, now time.Time, validity time.Duration) (*Issued, error) {
	s, rec, err := engine.Issue(ca, pki.Request{Kind: pki.KindServer, CommonName: name, Hosts: hosts, KeyType: kt, Now: now, Validity: validity}, dir)
	if err != nil {
		return nil, err
	}
	// ca.pem is the daemon's trust for clients: the current CA (and the
	// old one during a rotation), whichever CA signed the server
	// certificate.
	cur, err := a.CA()
	if err != nil {
		return nil, err
	}
	return &Issued{
		Record: rec,
		Dir:    dir,
		files: []bundle.File{
			{Name: ServerKeyFile, Data: s.KeyPEM, Mode: KeyMode},
			{Name: ServerCertFile, Data: s.CertPEM, Mode: CertMode},
			{Name: CACertFile, Data: a.DaemonCAPEM(cur), Mode: CertMode},
		},
	}, nil
}

// checkNameFree refuses to give a certificate of kind a name that a
// certificate of another kind already has: 'dtls revoke NAME' and 'dtls
// renew NAME' go by name, and must not reach a server certificate when a
// client's was meant, nor the reverse.
func (a *Authority) checkNameFree(names []string, kind store.Kind, now time.Time) error {
	if err := a.checkNameCase(names, now); err != nil {
		return err
	}
	for _, n := range names {
		recs, err := a.Store.ByName(n)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Kind != kind {
				return hint(fmt.Errorf("%q is already the name of a %s certificate (serial %s): a %s certificate cannot share it", n, r.Kind, r.Serial, kind),
					"choose another name")
			}
		}
	}
	return nil
}

// checkNameCase refuses a name that differs only in the case of its
// letters from one the inventory has: two holders told apart by case
// alone are one person to a reader of the audit trail or of 'dtls list',
// and two identities to the policy (an image namespace is the name
// exactly). The inventory's names are read once, whatever the number of
// names issued.
func (a *Authority) checkNameCase(names []string, now time.Time) error {
	have, err := a.Store.HolderNames(now)
	if err != nil {
		return err
	}
	// Every spelling of a name, by its lower case.
	spellings := map[string][]string{}
	for _, h := range append(have, names...) {
		k := strings.ToLower(h)
		if !slices.Contains(spellings[k], h) {
			spellings[k] = append(spellings[k], h)
		}
	}
	for _, n := range names {
		for _, h := range spellings[strings.ToLower(n)] {
			if h != n {
				return hint(fmt.Errorf("%q differs only in case from %q, a name the inventory has or this request gives", n, h),
					"use that name, or one that differs in more than case")
			}
		}
	}
	return nil
}

// CheckBundleTarget refuses to overwrite an existing bundle without force,
// and, even with force: a directory that overlaps the state directory or
// the daemon's certs directory (compared as they resolve, so a symbolic
// link cannot hide it), a directory that holds anything but bundle files (a
// replaced bundle is removed whole: '--out ~ --force' must not delete a home
// directory), and a bundle of another certificate holder (one bundle
// directory belongs to one certificate: replacing bob's bundle with
// alice's would leave bob's record pointing at alice's files).
func (a *Authority) CheckBundleTarget(dir, name string, force bool) error {
	protected := []string{a.Dir}
	if srv, err := a.Server(); err == nil && srv.CertsDir != "" {
		protected = append(protected, srv.CertsDir)
	}
	for _, p := range protected {
		if Within(dir, p) || Within(p, dir) {
			return hint(fmt.Errorf("bundle directory %q overlaps %q, which dtls keeps for the CA and the daemon", dir, p), "choose another --out")
		}
	}
	// Root writes, replaces and removes there: no other account may
	// change the directory above it (a holder swapped a directory on the
	// way for a link, and root's renewal replaced a root directory of the
	// bundle's name; a second red team round).
	if err := daemonconfig.CheckRootDir(existingDir(filepath.Dir(dir))); err != nil {
		return hint(fmt.Errorf("bundle directory %q: %w", dir, err), "write it with --archive FILE and hand the file over, or choose an --out that only root can change")
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("bundle directory %q: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("bundle directory %q exists and is not a directory", dir)
	case !force:
		return hint(fmt.Errorf("bundle directory %q already exists", dir), "pass --force to replace it, or choose another --out")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("bundle directory %q: %w", dir, err)
	}
	for _, e := range entries {
		if !bundleFiles[e.Name()] {
			return hint(fmt.Errorf("bundle directory %q holds %q, which is not part of a bundle: it is not replaced", dir, e.Name()),
				"choose another --out, or move the directory away first")
		}
	}
	for _, f := range []string{ClientCertFile, ServerCertFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		if c, err := pki.ParseCertificate(b); err == nil && c.Subject.CommonName != name {
			return hint(fmt.Errorf("bundle directory %q holds the bundle of %q, not of %q: one bundle directory belongs to one certificate", dir, c.Subject.CommonName, name),
				"choose another --out")
		}
	}
	return nil
}

// CheckArchiveTarget refuses to overwrite an archive without force, and a
// path whose directory does not exist.
func CheckArchiveTarget(path string, force bool) error {
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--archive %q: directory %q does not exist", path, filepath.Dir(path))
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--archive %q: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("--archive %q exists and is not a regular file", path)
	case !force:
		return hint(fmt.Errorf("archive %q already exists", path), "pass --force to replace it, or choose another --archive")
	}
	return nil
}

// existingDir is dir, or the nearest directory above it that exists: what
// a directory still to be made is judged by.
func existingDir(dir string) string {
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() || dir == filepath.Dir(dir) {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}
