package bundle

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// Renews says whether files (checked by Verify) are a renewal of the bundle
// installed in dir, which import then replaces in place without --force:
// the same client (common name) for the same daemon URL, a newer
// certificate, a CA in common between the two ca.pem (a renewal during
// a CA rotation carries both CAs), and a certificate signed by a CA the
// installed bundle trusts, or by the CA of fingerprint newCA (a renewal
// after a CA rotation began: the new CA, which the holder confirms with
// their admin). Anything else, an older certificate or another client's,
// needs --force; why says what differs.
//
// Why the signer: a CA certificate is public, and anyone who held a
// bundle of the daemon could make an archive of its CA and their own, and
// a certificate of the holder's name from their own CA. It passed as a
// renewal, and the bundle and its Docker contexts trusted their CA for
// the daemon (found by a red team).
func Renews(dir string, files []File, c *Checked, newCA string) (ok bool, why string) {
	oldCertPEM, err := os.ReadFile(filepath.Join(dir, clientenv.CertFile))
	if err != nil {
		return false, fmt.Sprintf("the installed bundle has no readable cert.pem (%v)", err)
	}
	old, err := pki.ParseCertificate(oldCertPEM)
	if err != nil {
		return false, fmt.Sprintf("the installed cert.pem does not parse (%v)", err)
	}
	var oldMeta clientenv.Meta
	if b, err := os.ReadFile(filepath.Join(dir, clientenv.MetaFile)); err == nil {
		_ = json.Unmarshal(b, &oldMeta)
	}
	switch {
	case old.Subject.CommonName != c.Cert.Subject.CommonName:
		return false, fmt.Sprintf("it is %q's bundle, the installed one %q's", c.Cert.Subject.CommonName, old.Subject.CommonName)
	case oldMeta.DockerHost != "" && oldMeta.DockerHost != c.Meta.DockerHost:
		return false, fmt.Sprintf("it is for %s, the installed one for %s", c.Meta.DockerHost, oldMeta.DockerHost)
	case !c.Cert.NotBefore.After(old.NotBefore):
		return false, fmt.Sprintf("its certificate (from %s) is not newer than the installed one (from %s)",
			c.Cert.NotBefore.UTC().Format("2006-01-02 15:04"), old.NotBefore.UTC().Format("2006-01-02 15:04"))
	}
	oldCA, err := os.ReadFile(filepath.Join(dir, clientenv.CAFile))
	if err != nil {
		return false, fmt.Sprintf("the installed bundle has no readable ca.pem (%v)", err)
	}
	olds, _ := pki.ParseCertificates(oldCA)
	news, _ := pki.ParseCertificates(Get(files, clientenv.CAFile))
	if !shareOne(olds, news) {
		return false, "its ca.pem shares no CA with the installed one"
	}
	issuer := signer(c.Cert, olds)
	if issuer == nil {
		if issuer = signer(c.Cert, news); issuer == nil {
			// Verify found one: not reached.
			return false, "no CA of its ca.pem signed its certificate"
		}
		if fp := pki.Fingerprint(issuer); newCA != fp {
			return false, fmt.Sprintf("its certificate is from a CA the installed bundle does not trust, %s, fingerprint %s: after a CA rotation, compare it with the new CA's ('sudo dtls rotate-ca --status' on the CA host) and pass --new-ca %s",
				pki.Describe(issuer), fp, fp)
		}
	}
	// Its ca.pem is what the bundle will trust for the daemon: no CA in
	// it but the installed ones and the one that signed the renewal (a
	// genuine renewal with another CA added passed, and the bundle then
	// trusted it for the server; a second red team round).
	for _, ca := range news {
		if !ca.Equal(issuer) && !slices.ContainsFunc(olds, ca.Equal) {
			return false, fmt.Sprintf("its ca.pem adds %s, fingerprint %s, which neither the installed bundle trusts nor signed its certificate", pki.Describe(ca), pki.Fingerprint(ca))
		}
	}
	return true, ""
}

// shareOne says whether a and b have a certificate in common.
func shareOne(a, b []*x509.Certificate) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Equal(y) {
				return true
			}
		}
	}
	return false
}

// signer is the CA of cas whose key signed c (nil for none).
func signer(c *x509.Certificate, cas []*x509.Certificate) *x509.Certificate {
	for _, ca := range cas {
		if c.CheckSignatureFrom(ca) == nil {
			return ca
		}
	}
	return nil
}
