package audit

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/pki"
)

// readCerts reads a PEM file of certificates; on failure it adds a finding
// with the given id and returns nil.
func (a *auditor) readCerts(id, what, path string, required bool) []*x509.Certificate {
	b, err := os.ReadFile(path)
	if err != nil {
		st := Skip
		fix := ""
		if errors.Is(err, fs.ErrNotExist) && required {
			st, fix = Fail, "sudo dtls init"
		}
		a.add(Finding{ID: id, Status: st, Title: what + " not checked", Detail: why(path, err) + map[bool]string{true: "; dockerd has tlsverify on and will not start without it", false: ""}[st == Fail], Fix: fix})
		return nil
	}
	certs, err := pki.ParseCertificates(b)
	if err != nil {
		a.add(Finding{ID: id, Status: Fail, Title: fmt.Sprintf("%s %s is unreadable: %v", what, path, err), Fix: "sudo dtls init --force"})
		return nil
	}
	return certs
}

// checkCerts checks the CA and server certificates and the server key.
func (a *auditor) checkCerts(d *daemonConf) {
	f := a.tlsFiles(d)
	tlsOn := d.tls || d.tlsVerify
	if !tlsOn {
		if _, err := os.Stat(f.cert); errors.Is(err, fs.ErrNotExist) {
			a.add(Finding{ID: "server-cert", Status: Skip, Title: "certificates not checked", Detail: fmt.Sprintf("TLS is not enabled and there is no %s", f.cert)})
			a.checkCAKey(f, nil)
			return
		}
	}
	now := a.cfg.Now
	cas := a.readCerts("ca-cert", "CA certificate", f.caCert, d.tlsVerify)
	certs := a.readCerts("server-cert", "server certificate", f.cert, tlsOn)
	for _, ca := range cas {
		a.checkValidity("ca-cert-expiry", "CA certificate "+fmt.Sprintf("%q", ca.Subject.CommonName), ca, now,
			"sudo dtls init --force (a new CA: every client certificate must then be re-issued)")
		if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
			a.add(Finding{ID: "ca-cert-usage", Status: Fail, Title: fmt.Sprintf("%s holds %q, which is not a CA certificate (basicConstraints CA:TRUE, keyUsage certSign)", f.caCert, ca.Subject.CommonName),
				Fix: "sudo dtls init --force"})
		} else {
			a.add(Finding{ID: "ca-cert-usage", Status: Pass, Title: fmt.Sprintf("%q is a CA certificate", ca.Subject.CommonName)})
		}
		a.checkKeySize("ca-cert-key", "CA certificate", ca)
	}
	a.checkCAKey(f, cas)
	if certs == nil {
		return
	}
	cert := certs[0]
	name := fmt.Sprintf("server certificate %s", f.cert)
	a.checkServerCert(name, cert, cas, f.caCert, "sudo dtls init (re-issues the server certificate), then restart docker")

	keyPEM, err := os.ReadFile(f.key)
	if err != nil {
		st := Skip
		if errors.Is(err, fs.ErrNotExist) && tlsOn {
			st = Fail
		}
		a.add(Finding{ID: "server-key-match", Status: st, Title: "server key not checked", Detail: why(f.key, err)})
		return
	}
	key, err := pki.ParsePrivateKey(keyPEM)
	switch {
	case err != nil:
		a.add(Finding{ID: "server-key-match", Status: Fail, Title: fmt.Sprintf("server key %s: %v", f.key, err), Detail: "dockerd cannot load it", Fix: "sudo dtls init --force"})
	case !pki.KeyMatches(cert, key):
		a.add(Finding{ID: "server-key-match", Status: Fail, Title: fmt.Sprintf("server key %s does not match %s", f.key, f.cert), Detail: "dockerd will not start", Fix: "sudo dtls init --force"})
	default:
		a.add(Finding{ID: "server-key-match", Status: Pass, Title: fmt.Sprintf("server key %s matches the certificate", f.key)})
	}
}

func (a *auditor) checkValidity(id, name string, c *x509.Certificate, now time.Time, fix string) {
	exp := c.NotAfter.UTC().Format("2006-01-02")
	switch {
	case now.After(c.NotAfter):
		a.add(Finding{ID: id, Status: Fail, Title: fmt.Sprintf("%s expired on %s", name, exp), Detail: "clients refuse the daemon's TLS handshake", Fix: fix})
	case now.Before(c.NotBefore):
		a.add(Finding{ID: id, Status: Fail, Title: fmt.Sprintf("%s is not valid before %s", name, c.NotBefore.UTC().Format(time.RFC3339)), Detail: "check the clock", Fix: fix})
	case a.cfg.ExpiryWarning > 0 && now.Add(a.cfg.ExpiryWarning).After(c.NotAfter):
		days := int(c.NotAfter.Sub(now).Hours() / 24)
		a.add(Finding{ID: id, Status: Warn, Title: fmt.Sprintf("%s expires on %s, in %d days", name, exp, days), Fix: fix})
	default:
		a.add(Finding{ID: id, Status: Pass, Title: fmt.Sprintf("%s is valid until %s", name, exp)})
	}
}

// checkKeySize fails RSA keys under 2048 bits (NIST SP 800-131A: 1024-bit
// RSA is disallowed since 2013).
func (a *auditor) checkKeySize(id, what string, c *x509.Certificate) {
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		a.add(Finding{ID: id, Status: Fail, Title: fmt.Sprintf("%s %q has an RSA key of %d bits, under 2048", what, c.Subject.CommonName, k.N.BitLen()), Fix: "sudo dtls init --force --key-type ecdsa-p256"})
		return
	}
	a.add(Finding{ID: id, Status: Pass, Title: fmt.Sprintf("%s %q key: %s", what, c.Subject.CommonName, c.PublicKeyAlgorithm)})
}

// checkCAKey checks that the CA's private key is neither in the daemon's
// certs directory (dockerd needs only ca.pem, server-cert.pem and
// server-key.pem there; whoever reads the CA key can mint client
// certificates, i.e. root) nor readable by anyone but its owner.
func (a *auditor) checkCAKey(f tlsFiles, cas []*x509.Certificate) {
	var found []string
	entries, err := os.ReadDir(f.certsDir)
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		a.add(Finding{ID: "ca-key-location", Status: Skip, Title: "certs directory not searched for the CA key", Detail: why(f.certsDir, err)})
	case err == nil:
		var unread []string
		for _, e := range entries {
			p := filepath.Join(f.certsDir, e.Name())
			// Stat, not the entry's own type: a symbolic link to the
			// CA key puts it here as much as a copy does.
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || p == f.key {
				continue
			}
			if e.Name() == "ca-key.pem" {
				found = append(found, p)
				continue
			}
			switch is, err := isCAKey(p, cas); {
			case is:
				found = append(found, p)
			case err != nil:
				unread = append(unread, why(p, err))
			}
		}
		if len(found) == 0 && len(unread) > 0 {
			// A file that could not be read may be the CA key.
			a.add(Finding{ID: "ca-key-location", Status: Skip, Title: "certs directory not fully searched for the CA key", Detail: strings.Join(unread, "; ")})
		} else if len(found) > 0 {
			a.add(Finding{ID: "ca-key-location", Status: Fail,
				Title:  fmt.Sprintf("the CA private key is in the daemon's certs directory: %s", strings.Join(found, ", ")),
				Detail: "whoever can read it can issue client certificates, i.e. become root through the daemon; dockerd does not need it",
				Fix:    fmt.Sprintf("sudo mkdir -m 700 -p /var/lib/dtls && sudo mv %s /var/lib/dtls/ca-key.pem", found[0])})
		} else {
			a.add(Finding{ID: "ca-key-location", Status: Pass, Title: fmt.Sprintf("no CA private key in %s", f.certsDir)})
		}
	}

	if a.cfg.StateDir == "" {
		return
	}
	p := filepath.Join(a.cfg.StateDir, "ca-key.pem")
	fi, err := os.Stat(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.add(Finding{ID: "ca-key-mode", Status: Skip, Title: "CA key permissions not checked", Detail: why(p, err)})
		}
		return
	}
	dirFi, derr := os.Stat(a.cfg.StateDir)
	perm := fi.Mode().Perm()
	switch {
	case perm&0o077 != 0:
		a.add(Finding{ID: "ca-key-mode", Status: Fail, Title: fmt.Sprintf("CA key %s has mode %04o: others can read it", p, perm), Fix: "sudo chmod 400 " + p})
	case derr == nil && dirFi.Mode().Perm()&0o077 != 0:
		a.add(Finding{ID: "ca-key-mode", Status: Warn, Title: fmt.Sprintf("state directory %s has mode %04o", a.cfg.StateDir, dirFi.Mode().Perm()), Detail: "others can list it and replace files in it if it is writable", Fix: "sudo chmod 700 " + a.cfg.StateDir})
	default:
		a.add(Finding{ID: "ca-key-mode", Status: Pass, Title: fmt.Sprintf("CA key %s has mode %04o", p, perm)})
	}
}

// isCAKey reports whether the file at p is the private key of one of cas;
// err is set when p could not be read (without root: permission denied).
func isCAKey(p string, cas []*x509.Certificate) (bool, error) {
	fi, err := os.Stat(p)
	if err != nil || fi.Size() > 64<<10 || len(cas) == 0 {
		return false, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false, err
	}
	if !bytes.Contains(b, []byte("PRIVATE KEY")) {
		return false, nil
	}
	k, err := pki.ParsePrivateKey(b)
	if err != nil {
		return false, nil
	}
	for _, ca := range cas {
		if pki.KeyMatches(ca, k) {
			return true, nil
		}
	}
	return false, nil
}

func hasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, e := range c.ExtKeyUsage {
		if e == u {
			return true
		}
	}
	return false
}

func sans(c *x509.Certificate) []string {
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 {
		return []string{"no names"}
	}
	return out
}

// checkServerCert checks a server certificate: validity, the names clients
// use (Config.Hosts), the chain to cas (read from caPath), extended key
// usage, signature and key size. name says which certificate it is, in
// the findings' titles; renewFix is the fix of an expired one.
func (a *auditor) checkServerCert(name string, cert *x509.Certificate, cas []*x509.Certificate, caPath, renewFix string) {
	now := a.cfg.Now
	a.checkValidity("server-cert-expiry", name, cert, now, renewFix)

	// SANs: Go's crypto/tls (the Docker CLI) checks the name a client dials
	// against the subjectAltName; CN is ignored since Go 1.15.
	if len(a.cfg.Hosts) > 0 {
		if m := pki.Missing(cert, a.cfg.Hosts); len(m) > 0 {
			a.add(Finding{ID: "server-cert-sans", Status: Warn,
				Title:  fmt.Sprintf("%s does not cover %s", name, strings.Join(m, ", ")),
				Detail: fmt.Sprintf("it covers %s; clients connecting by a missing name get \"x509: certificate is valid for ..., not ...\"", strings.Join(sans(cert), ", ")),
				Fix:    "sudo dtls init --host " + strings.Join(a.cfg.Hosts, " --host ")})
		} else {
			a.add(Finding{ID: "server-cert-sans", Status: Pass, Title: fmt.Sprintf("%s covers %s", name, strings.Join(a.cfg.Hosts, ", "))})
		}
	}

	// The chain, checked at a time when the certificate is valid so that
	// an expired certificate is reported once, as expired.
	if cas != nil {
		roots := x509.NewCertPool()
		lo, hi := cert.NotBefore, cert.NotAfter
		for _, ca := range cas {
			roots.AddCert(ca)
			if ca.NotBefore.After(lo) {
				lo = ca.NotBefore
			}
			if ca.NotAfter.Before(hi) {
				hi = ca.NotAfter
			}
		}
		at := now
		if (at.Before(lo) || at.After(hi)) && !hi.Before(lo) {
			at = lo.Add(hi.Sub(lo) / 2)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			a.add(Finding{ID: "server-cert-chain", Status: Fail,
				Title:  fmt.Sprintf("%s does not chain to the CA in %s: %v", name, caPath, err),
				Detail: "clients that trust this CA refuse the daemon",
				Fix:    "sudo dtls init (re-issues it from the CA)"})
		} else {
			a.add(Finding{ID: "server-cert-chain", Status: Pass, Title: fmt.Sprintf("%s chains to %s", name, caPath)})
		}
	}

	// Extended key usage (RFC 5280 4.2.1.12): crypto/tls on the client
	// requires serverAuth when the extension is present.
	switch {
	case hasEKU(cert, x509.ExtKeyUsageServerAuth) || hasEKU(cert, x509.ExtKeyUsageAny):
		a.add(Finding{ID: "server-cert-eku", Status: Pass, Title: name + " has extended key usage serverAuth"})
	case len(cert.ExtKeyUsage) == 0:
		a.add(Finding{ID: "server-cert-eku", Status: Warn, Title: name + " has no extended key usage", Detail: "it could serve as a client certificate too", Fix: "sudo dtls init --force"})
	default:
		a.add(Finding{ID: "server-cert-eku", Status: Fail, Title: name + " lacks extended key usage serverAuth", Detail: "clients refuse it", Fix: "sudo dtls init --force"})
	}

	// SHA-1 signatures: Go (the Docker CLI, dockerd) refuses them since
	// Go 1.18; collisions are practical (SHAttered, 2017).
	switch cert.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
		a.add(Finding{ID: "server-cert-signature", Status: Fail, Title: fmt.Sprintf("%s is signed with %s", name, cert.SignatureAlgorithm), Fix: "sudo dtls init --force"})
	default:
		a.add(Finding{ID: "server-cert-signature", Status: Pass, Title: fmt.Sprintf("%s is signed with %s", name, cert.SignatureAlgorithm)})
	}
	a.checkKeySize("server-cert-key", "server certificate", cert)
}
