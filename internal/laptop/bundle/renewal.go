package bundle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// Renews says whether files (checked by Verify) are a renewal of the bundle
// installed in dir, which import then replaces in place without --force:
// the same client (common name) for the same daemon URL, a newer
// certificate, and a CA in common between the two ca.pem (a renewal during
// a CA rotation carries both CAs). Anything else, an older certificate or
// another client's, needs --force; why says what differs.
func Renews(dir string, files []File, c *Checked) (ok bool, why string) {
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
	for _, a := range olds {
		for _, b := range news {
			if a.Equal(b) {
				return true, ""
			}
		}
	}
	return false, "its ca.pem shares no CA with the installed one"
}
