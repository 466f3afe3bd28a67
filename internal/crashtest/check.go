// Package crashtest checks that a dtls install is consistent, and holds the
// kill loop that uses the check: a dtls command is started, killed with
// SIGKILL at a random moment, and the next command ('dtls list', which takes
// the lock and finishes or undoes what the killed run left) must leave files
// that agree with each other and with the inventory.
//
// Check reads only files: the install's paths (Layout) and the records of
// 'dtls list -o json' (ParseList). It never runs dtls and never writes, so
// any test that has an install in a temporary directory can call it.
//
// The kill loop is TestKillLoop; see its comment for the environment
// variables that size and replay it.
package crashtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// File names dtls uses (README "Files and modes").
const (
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	oldCACertFile  = "ca-old.pem"
	oldCAKeyFile   = "ca-old-key.pem"
	crlFile        = "crl.pem"
	journalDir     = "journal"
	serverCertFile = "server-cert.pem"
	serverKeyFile  = "server-key.pem"
	clientCertFile = "cert.pem"
	clientKeyFile  = "key.pem"
	clientMetaFile = "dtls.json"
)

// Layout is where one dtls install keeps its files. Every path is one that
// a dtls flag points at, so that a test never reaches /etc/docker,
// /etc/systemd or /var/lib/dtls.
type Layout struct {
	// Root holds everything below; Check scans it for leftovers.
	Root string
	// StateDir is --state-dir: the CA, crl.pem, journal/, dtls.db.
	StateDir string
	// CertsDir is --certs-dir: the daemon's ca.pem, server-cert.pem,
	// server-key.pem.
	CertsDir string
	// DaemonJSON is --daemon-json.
	DaemonJSON string
	// SystemdDir is --systemd-dir (an empty directory: no docker.service).
	SystemdDir string
	// Bundles is the parent of every bundle directory (issue-client
	// --out, issue-server --out).
	Bundles string
}

// NewLayout is the layout the kill loop uses: state/, certs/, daemon.json,
// systemd/ and bundles/ under root.
func NewLayout(root string) Layout {
	return Layout{
		Root:       root,
		StateDir:   filepath.Join(root, "state"),
		CertsDir:   filepath.Join(root, "certs"),
		DaemonJSON: filepath.Join(root, "daemon.json"),
		SystemdDir: filepath.Join(root, "systemd"),
		Bundles:    filepath.Join(root, "bundles"),
	}
}

// Record is one entry of 'dtls list -o json'.
type Record struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"` // ca, server or client
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Status is valid, expiring, expired, revoked or superseded.
	Status   string   `json:"status"`
	SANs     []string `json:"sans"`
	CASerial string   `json:"ca_serial"`
	OldCA    bool     `json:"old_ca"`
	Path     string   `json:"path"`
}

// Good reports whether the certificate is in use: valid or expiring.
func (r Record) Good() bool { return r.Status == "valid" || r.Status == "expiring" }

// ParseList parses the output of 'dtls list -o json'.
func ParseList(b []byte) ([]Record, error) {
	var recs []Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("parse 'dtls list -o json' output: %w", err)
	}
	return recs, nil
}

// Problems is every inconsistency one Check found, one sentence each.
type Problems []string

func (p Problems) Error() string {
	return fmt.Sprintf("%d inconsistencies:\n  %s", len(p), strings.Join(p, "\n  "))
}

// Check checks l against recs (the output of 'dtls list -o json' on it) and
// returns every problem it finds as Problems, or nil. It has no memory of
// earlier checks; a Checker also checks that CRL numbers never go down.
func Check(l Layout, recs []Record) error {
	return (&Checker{Layout: l}).Check(recs)
}

// Checker checks one install again and again, remembering each CA's CRL
// number between checks (RFC 5280 5.2.3: CRL numbers increase
// monotonically).
type Checker struct {
	Layout Layout
	// Now is the time certificates are verified at; time.Now when nil.
	Now func() time.Time

	// crlNumbers is the highest CRL number seen, by the CRL's authority
	// key identifier (dtls has given its CAs one subject name, so the
	// issuer name may not tell two CAs apart).
	crlNumbers map[string]*big.Int
}

// check is one run of Checker.Check.
type check struct {
	l    Layout
	now  time.Time
	errs Problems

	ca, oldCA *x509.Certificate // state/ca.pem, state/ca-old.pem (nil outside a rotation)
	server    *x509.Certificate // certs/server-cert.pem
}

func (c *check) addf(format string, a ...any) { c.errs = append(c.errs, fmt.Sprintf(format, a...)) }

// rel names path relative to the layout's root, for short messages.
func (c *check) rel(path string) string {
	if r, err := filepath.Rel(c.l.Root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// Check checks the install against recs and returns every problem found
// (Problems), or nil:
//
//   - the state directory is 0700; the CA pair in it (and the old pair
//     during a rotation: both files or neither) match, keys 0400 or 0600;
//   - the daemon's server key matches its certificate, which is issued by
//     the current CA (or, during a rotation, by the old one: step 1) and
//     verifies for serverAuth against certs/ca.pem;
//     certs/ca.pem trusts the current CA, the old one during a rotation,
//     and no other;
//   - daemon.json parses and points dockerd at those files with tlsverify;
//   - one party serves TCP, as server.json's mode says: the gateway (its
//     units there, no TCP host in daemon.json) or dockerd (the reverse);
//   - every bundle directory is complete, 0700, its key 0400 or 0600 and
//     matching its certificate, which verifies against the bundle's ca.pem
//     for its purpose (clientAuth, serverAuth); while the daemon's own
//     certificate is of the old CA (step 1 of a rotation), a server
//     bundle's is too; a client bundle's dtls.json
//     names that certificate's serial, and a client bundle of the current
//     CA also verifies the daemon's server certificate with its ca.pem (or
//     that client could not connect);
//   - every good record (valid, expiring) is what its path holds: a bundle
//     whose certificate has the record's serial, the daemon's
//     server-cert.pem, or the state directory's ca.pem; and state/ca.pem
//     has a good record;
//   - crl.pem holds at most one CRL per CA, each signed by its CA and not
//     past nextUpdate; every revoked serial of the current CA (and of the
//     old one during a rotation) is in its CA's CRL, and no CRL lists a
//     serial the inventory does not have as revoked; CRL numbers never go
//     down from one Check to the next;
//   - nothing under the root has ".tmp-" in its name or ends in ".old",
//     and the state directory's journal is empty (a leftover that holds a
//     private key says so).
func (k *Checker) Check(recs []Record) error {
	now := time.Now()
	if k.Now != nil {
		now = k.Now()
	}
	c := &check{l: k.Layout, now: now}
	c.stateCA()
	c.daemonCerts()
	c.daemonJSON()
	c.gatewayMode()
	c.bundles()
	c.records(recs)
	k.crls(c, recs)
	c.leftovers()
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// stateCA checks the CA pairs in the state directory.
func (c *check) stateCA() {
	c.dirMode(c.l.StateDir, 0o700)
	c.ca = c.pair(filepath.Join(c.l.StateDir, caCertFile), filepath.Join(c.l.StateDir, caKeyFile), true)
	if c.ca != nil && !c.ca.IsCA {
		c.addf("%s is not a CA certificate", c.rel(filepath.Join(c.l.StateDir, caCertFile)))
	}
	c.oldCA = c.pair(filepath.Join(c.l.StateDir, oldCACertFile), filepath.Join(c.l.StateDir, oldCAKeyFile), false)
}

// pair checks that a certificate and its key both exist (when required, or
// when either does) and match, and returns the certificate (nil when
// absent or unreadable).
func (c *check) pair(certPath, keyPath string, required bool) *x509.Certificate {
	_, certErr := os.Lstat(certPath)
	_, keyErr := os.Lstat(keyPath)
	certOK, keyOK := certErr == nil, keyErr == nil
	switch {
	case !certOK && !keyOK:
		if required {
			c.addf("%s and %s are both missing", c.rel(certPath), c.rel(keyPath))
		}
		return nil
	case !keyOK:
		c.addf("%s exists without its key %s", c.rel(certPath), c.rel(keyPath))
	case !certOK:
		c.addf("%s exists without its certificate %s", c.rel(keyPath), c.rel(certPath))
		c.keyMode(keyPath)
		return nil
	}
	cert := c.cert(certPath)
	if keyOK {
		c.keyMode(keyPath)
		if cert != nil {
			c.keyMatches(keyPath, cert, certPath)
		}
	}
	return cert
}

// cert reads the first certificate of a PEM file, reporting why it cannot.
func (c *check) cert(path string) *x509.Certificate {
	b, err := os.ReadFile(path)
	if err != nil {
		c.addf("read %s: %v", c.rel(path), err)
		return nil
	}
	certs, err := ParseCertificates(b)
	if err != nil {
		c.addf("%s: %v", c.rel(path), err)
		return nil
	}
	return certs[0]
}

// certs reads every certificate of a PEM file.
func (c *check) certs(path string) []*x509.Certificate {
	b, err := os.ReadFile(path)
	if err != nil {
		c.addf("read %s: %v", c.rel(path), err)
		return nil
	}
	certs, err := ParseCertificates(b)
	if err != nil {
		c.addf("%s: %v", c.rel(path), err)
		return nil
	}
	return certs
}

func (c *check) keyMatches(keyPath string, cert *x509.Certificate, certPath string) {
	b, err := os.ReadFile(keyPath)
	if err != nil {
		c.addf("read %s: %v", c.rel(keyPath), err)
		return
	}
	key, err := ParsePrivateKey(b)
	if errors.Is(err, ErrEncryptedKey) {
		return // dtls init --encrypt-ca-key: no passphrase here to check it with
	}
	if err != nil {
		c.addf("%s: %v", c.rel(keyPath), err)
		return
	}
	if !KeyMatches(key, cert) {
		c.addf("%s does not match %s (serial %s)", c.rel(keyPath), c.rel(certPath), serialHex(cert.SerialNumber))
	}
}

// keyMode: a private key is readable by its owner only (0400 as dtls
// writes it, 0600 as 'dtls import' does).
func (c *check) keyMode(path string) {
	fi, err := os.Lstat(path)
	if err != nil {
		return
	}
	if m := fi.Mode(); !m.IsRegular() || (m.Perm() != 0o400 && m.Perm() != 0o600) {
		c.addf("%s has mode %v, want a regular file with mode 0400 or 0600", c.rel(path), m)
	}
}

func (c *check) dirMode(path string, want fs.FileMode) {
	fi, err := os.Lstat(path)
	if err != nil {
		c.addf("%s: %v", c.rel(path), err)
		return
	}
	if !fi.IsDir() || fi.Mode().Perm() != want {
		c.addf("%s has mode %v, want a directory with mode %04o", c.rel(path), fi.Mode(), want)
	}
}

// daemonCerts checks the daemon's certificates directory.
func (c *check) daemonCerts() {
	certPath := filepath.Join(c.l.CertsDir, serverCertFile)
	caPath := filepath.Join(c.l.CertsDir, caCertFile)
	c.server = c.pair(certPath, filepath.Join(c.l.CertsDir, serverKeyFile), true)
	trusted := c.certs(caPath)
	if c.server != nil && trusted != nil {
		if err := verify(c.server, trusted, x509.ExtKeyUsageServerAuth, c.now); err != nil {
			c.addf("%s does not verify for serverAuth against %s: %v", c.rel(certPath), c.rel(caPath), err)
		}
	}
	// During a rotation the server certificate is of the old CA until
	// 'rotate-ca --switch' (step 1: every bundle, even one that trusts only
	// the old CA, verifies it), of the current CA after it.
	if c.server != nil && c.ca != nil && c.server.CheckSignatureFrom(c.ca) != nil &&
		(c.oldCA == nil || c.server.CheckSignatureFrom(c.oldCA) != nil) {
		c.addf("%s (serial %s) is not issued by the current CA %s (serial %s)%s", c.rel(certPath), serialHex(c.server.SerialNumber),
			c.rel(filepath.Join(c.l.StateDir, caCertFile)), serialHex(c.ca.SerialNumber), map[bool]string{true: ", nor by the old one", false: ""}[c.oldCA != nil])
	}
	if trusted == nil {
		return
	}
	for _, want := range []struct {
		cert *x509.Certificate
		file string
	}{{c.ca, caCertFile}, {c.oldCA, oldCACertFile}} {
		if want.cert != nil && !containsCert(trusted, want.cert) {
			c.addf("%s does not hold %s (serial %s): dockerd would refuse its clients", c.rel(caPath),
				c.rel(filepath.Join(c.l.StateDir, want.file)), serialHex(want.cert.SerialNumber))
		}
	}
	for _, t := range trusted {
		if !t.Equal(c.ca) && !t.Equal(c.oldCA) {
			c.addf("%s trusts CA serial %s, which is neither %s nor %s: dockerd still accepts its clients", c.rel(caPath),
				serialHex(t.SerialNumber), caCertFile, oldCACertFile)
		}
	}
}

// daemonJSON checks that daemon.json parses and turns on verified TLS with
// the certificates directory's files.
func (c *check) daemonJSON() {
	b, err := os.ReadFile(c.l.DaemonJSON)
	if err != nil {
		c.addf("read %s: %v", c.rel(c.l.DaemonJSON), err)
		return
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		c.addf("%s is not a JSON object: %v", c.rel(c.l.DaemonJSON), err)
		return
	}
	if cfg["tlsverify"] != true {
		c.addf("%s: \"tlsverify\" is %v, want true", c.rel(c.l.DaemonJSON), cfg["tlsverify"])
	}
	for key, file := range map[string]string{"tlscacert": caCertFile, "tlscert": serverCertFile, "tlskey": serverKeyFile} {
		if want := filepath.Join(c.l.CertsDir, file); cfg[key] != want {
			c.addf("%s: %q is %v, want %q", c.rel(c.l.DaemonJSON), key, cfg[key], want)
		}
	}
}

// bundles checks every bundle directory under l.Bundles.
func (c *check) bundles() {
	entries, err := os.ReadDir(c.l.Bundles)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		c.addf("read %s: %v", c.rel(c.l.Bundles), err)
		return
	}
	for _, e := range entries {
		if leftover(e.Name()) {
			continue // reported by leftovers
		}
		c.bundle(filepath.Join(c.l.Bundles, e.Name()))
	}
}

func (c *check) bundle(dir string) {
	fi, err := os.Lstat(dir)
	if err != nil {
		c.addf("%s: %v", c.rel(dir), err)
		return
	}
	if !fi.IsDir() {
		c.addf("%s is not a bundle directory (mode %v)", c.rel(dir), fi.Mode())
		return
	}
	c.dirMode(dir, 0o700)
	has := func(name string) bool { _, err := os.Lstat(filepath.Join(dir, name)); return err == nil }
	var certName, keyName string
	var eku x509.ExtKeyUsage
	var need []string
	switch {
	case has(clientCertFile) || has(clientKeyFile):
		certName, keyName, eku = clientCertFile, clientKeyFile, x509.ExtKeyUsageClientAuth
		need = []string{clientCertFile, clientKeyFile, caCertFile, clientMetaFile}
	case has(serverCertFile) || has(serverKeyFile):
		certName, keyName, eku = serverCertFile, serverKeyFile, x509.ExtKeyUsageServerAuth
		need = []string{serverCertFile, serverKeyFile, caCertFile}
	default:
		c.addf("%s is neither a client bundle (%s, %s) nor a server bundle (%s, %s)", c.rel(dir),
			clientCertFile, clientKeyFile, serverCertFile, serverKeyFile)
		return
	}
	complete := true
	for _, n := range need {
		if !has(n) {
			c.addf("bundle %s is missing %s", c.rel(dir), n)
			complete = false
		}
	}
	if !complete {
		return
	}
	certPath := filepath.Join(dir, certName)
	cert := c.pair(certPath, filepath.Join(dir, keyName), true)
	roots := c.certs(filepath.Join(dir, caCertFile))
	if cert == nil || roots == nil {
		return
	}
	if err := verify(cert, roots, eku, c.now); err != nil {
		c.addf("%s does not verify against the bundle's %s: %v", c.rel(certPath), caCertFile, err)
	}
	if eku != x509.ExtKeyUsageClientAuth {
		// At step 1 of a rotation (the daemon's own certificate still of
		// the old CA) every server certificate is of the old CA: one of the
		// new CA fails every bundle that trusts only the old one.
		if c.oldCA != nil && c.ca != nil && c.server != nil && c.server.CheckSignatureFrom(c.oldCA) == nil && cert.CheckSignatureFrom(c.ca) == nil {
			c.addf("%s (serial %s) is of the current CA while the daemon's %s is still of the old one (step 1 of a rotation): bundles that trust only the old CA would not verify it",
				c.rel(certPath), serialHex(cert.SerialNumber), serverCertFile)
		}
		return
	}
	c.clientMeta(dir, cert)
	// A client of the current CA must be able to verify the daemon: its
	// ca.pem is the only trust it has (DOCKER_CERT_PATH).
	if c.ca != nil && c.server != nil && cert.CheckSignatureFrom(c.ca) == nil {
		if err := verify(c.server, roots, x509.ExtKeyUsageServerAuth, c.now); err != nil {
			c.addf("%s of a client of the current CA does not verify the daemon's %s (serial %s): %v",
				c.rel(filepath.Join(dir, caCertFile)), serverCertFile, serialHex(c.server.SerialNumber), err)
		}
	}
}

// clientMeta checks that dtls.json names the bundle's certificate.
func (c *check) clientMeta(dir string, cert *x509.Certificate) {
	p := filepath.Join(dir, clientMetaFile)
	b, err := os.ReadFile(p)
	if err != nil {
		c.addf("read %s: %v", c.rel(p), err)
		return
	}
	var m struct {
		Serial string `json:"serial"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		c.addf("%s: %v", c.rel(p), err)
		return
	}
	if !sameSerial(m.Serial, cert.SerialNumber) {
		c.addf("%s names serial %q, but %s has serial %s", c.rel(p), m.Serial, clientCertFile, serialHex(cert.SerialNumber))
	}
}

// records checks that every good record is what its path holds.
func (c *check) records(recs []Record) {
	caPath := filepath.Join(c.l.StateDir, caCertFile)
	daemonCert := filepath.Join(c.l.CertsDir, serverCertFile)
	caRecorded := false
	for _, r := range recs {
		if !r.Good() || r.Path == "" {
			continue
		}
		what := fmt.Sprintf("%s record %q serial %s (%s)", r.Kind, r.Name, r.Serial, r.Status)
		var file string
		switch {
		case r.Kind == "ca":
			if filepath.Clean(r.Path) != filepath.Clean(c.l.StateDir) {
				c.addf("%s has path %s, want the state directory", what, r.Path)
				continue
			}
			file = caPath
		case r.Kind == "server" && filepath.Clean(r.Path) == daemonCert:
			file = daemonCert
		case r.Kind == "server":
			file = filepath.Join(r.Path, serverCertFile)
		case r.Kind == "client":
			file = filepath.Join(r.Path, clientCertFile)
		default:
			c.addf("%s: unknown kind", what)
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			c.addf("%s: its file is missing: %v", what, err)
			continue
		}
		certs, err := ParseCertificates(b)
		if err != nil {
			c.addf("%s: %s: %v", what, c.rel(file), err)
			continue
		}
		if !sameSerial(r.Serial, certs[0].SerialNumber) {
			c.addf("%s: %s holds serial %s instead", what, c.rel(file), serialHex(certs[0].SerialNumber))
			continue
		}
		if r.Kind == "ca" {
			caRecorded = true
		}
	}
	if c.ca != nil && !caRecorded {
		c.addf("%s (serial %s) has no good ca record in the inventory", c.rel(caPath), serialHex(c.ca.SerialNumber))
	}
}

// crls checks state/crl.pem against the inventory and the CRL numbers of
// the previous check.
func (k *Checker) crls(c *check, recs []Record) {
	p := filepath.Join(c.l.StateDir, crlFile)
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.addf("read %s: %v", c.rel(p), err)
		return
	}
	type caCRL struct {
		ca   *x509.Certificate
		file string
		crl  *x509.RevocationList
	}
	cas := []*caCRL{}
	for _, ca := range []struct {
		cert *x509.Certificate
		file string
	}{{c.ca, caCertFile}, {c.oldCA, oldCACertFile}} {
		if ca.cert != nil {
			cas = append(cas, &caCRL{ca: ca.cert, file: ca.file})
		}
	}
	seen := map[string]*big.Int{}
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				c.addf("%s has trailing data that is not PEM", c.rel(p))
			}
			break
		}
		if blk.Type != "X509 CRL" {
			c.addf("%s holds a %q PEM block", c.rel(p), blk.Type)
			continue
		}
		crl, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			c.addf("%s: %v", c.rel(p), err)
			continue
		}
		if crl.Number != nil {
			id := "key id " + hex.EncodeToString(crl.AuthorityKeyId)
			if len(crl.AuthorityKeyId) == 0 {
				id = "issuer " + crl.Issuer.String()
			}
			seen[id] = crl.Number
		}
		if !crl.NextUpdate.IsZero() && c.now.After(crl.NextUpdate) {
			c.addf("%s: a CRL (number %v) is past its nextUpdate %s", c.rel(p), crl.Number, crl.NextUpdate.Format(time.RFC3339))
		}
		for _, x := range cas {
			if crl.CheckSignatureFrom(x.ca) != nil {
				continue
			}
			if x.crl != nil {
				c.addf("%s holds two CRLs signed by %s (serial %s)", c.rel(p), x.file, serialHex(x.ca.SerialNumber))
			}
			x.crl = crl
		}
	}
	revoked := map[string]bool{}
	for _, r := range recs {
		if r.Status == "revoked" {
			revoked[normSerial(r.Serial)] = true
		}
	}
	for _, x := range cas {
		caSerial := serialHex(x.ca.SerialNumber)
		listed := map[string]bool{}
		if x.crl != nil {
			for _, e := range x.crl.RevokedCertificateEntries {
				s := serialHex(e.SerialNumber)
				listed[s] = true
				if !revoked[s] {
					c.addf("the CRL of %s (serial %s) in %s lists serial %s, which the inventory does not have as revoked", x.file, caSerial, c.rel(p), s)
				}
			}
		}
		var missing []string
		for _, r := range recs {
			if r.Status == "revoked" && sameSerialHex(r.CASerial, caSerial) && !listed[normSerial(r.Serial)] {
				missing = append(missing, fmt.Sprintf("%s %q serial %s", r.Kind, r.Name, r.Serial))
			}
		}
		if len(missing) > 0 && x.crl == nil {
			c.addf("%s has no CRL signed by %s (serial %s), which has %d revoked certificates (%s)", c.rel(p), x.file, caSerial, len(missing), strings.Join(missing, ", "))
			continue
		}
		for _, m := range missing {
			c.addf("the CRL of %s (serial %s, number %v) in %s lacks revoked %s", x.file, caSerial, x.crl.Number, c.rel(p), m)
		}
	}
	if k.crlNumbers == nil {
		k.crlNumbers = map[string]*big.Int{}
	}
	for aki, n := range seen {
		if prev := k.crlNumbers[aki]; prev != nil && n.Cmp(prev) < 0 {
			c.addf("%s: the CRL number of the CA with %s went down from %v to %v", c.rel(p), aki, prev, n)
			continue
		}
		k.crlNumbers[aki] = n
	}
}

// leftover reports whether a name is a temporary file or directory dtls
// writes on the way to a rename (atomicfile.Write, writeBundle,
// atomicfile.ReplaceDir).
func leftover(name string) bool {
	return strings.Contains(name, ".tmp-") || strings.HasSuffix(name, ".old")
}

// leftovers finds temporary files anywhere under the root, and journals.
func (c *check) leftovers() {
	var found []string
	_ = filepath.WalkDir(c.l.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			c.addf("walk %s: %v", c.rel(path), err)
			return nil
		}
		if leftover(d.Name()) {
			found = append(found, c.rel(path))
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	for _, f := range found {
		c.addf("leftover %s%s", f, c.keyNote(filepath.Join(c.l.Root, f)))
	}
	jdir := filepath.Join(c.l.StateDir, journalDir)
	entries, err := os.ReadDir(jdir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.addf("read %s: %v", c.rel(jdir), err)
	}
	for _, e := range entries { // sorted by name
		p := filepath.Join(jdir, e.Name())
		c.addf("journal entry %s is still there after the next command%s", c.rel(p), c.keyNote(p))
	}
}

// keyNote is " (it holds a private key)" for a regular file that holds
// one, as PEM or base64-encoded PEM (a []byte in JSON), else "".
func (c *check) keyNote(path string) string {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil || !holdsPrivateKey(b) {
		return ""
	}
	return " (it holds a private key)"
}

var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`)

func holdsPrivateKey(b []byte) bool {
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		return true
	}
	for _, run := range base64Run.FindAll(b, -1) {
		run = bytes.TrimRight(run, "=")
		dec, err := base64.RawStdEncoding.DecodeString(string(run[:len(run)/4*4]))
		if err == nil && bytes.Contains(dec, []byte("PRIVATE KEY-----")) {
			return true
		}
	}
	return false
}

// ErrEncryptedKey is returned by ParsePrivateKey for an encrypted PKCS #8
// key (dtls init --encrypt-ca-key).
var ErrEncryptedKey = errors.New("the key is encrypted")

// ParsePrivateKey parses the first PEM block of b: PKCS #8 ("PRIVATE KEY":
// ECDSA, RSA, Ed25519), SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE
// KEY").
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM private key")
	}
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, ErrEncryptedKey
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", blk.Type, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", key)
}

// KeyMatches reports whether key is the private key of cert.
func KeyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// ParseCertificates parses every PEM certificate in b; it fails on a PEM
// block of another type and when there is none.
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a certificate", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// verify checks that cert chains to one of roots for usage at now.
func verify(cert *x509.Certificate, roots []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// serialHex is a serial as dtls prints it: lowercase hex, no leading zeros.
func serialHex(n *big.Int) string { return fmt.Sprintf("%x", n) }

// normSerial is a hex serial in serialHex's form ("" when it is not hex).
func normSerial(s string) string {
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return ""
	}
	return serialHex(n)
}

func sameSerial(s string, n *big.Int) bool { return normSerial(s) == serialHex(n) }

func sameSerialHex(a, b string) bool { return a != "" && normSerial(a) == normSerial(b) }
