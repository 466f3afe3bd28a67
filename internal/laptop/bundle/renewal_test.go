package bundle

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// TestRenews: a renewal replaces the installed bundle in place when its
// certificate is signed by a CA the installed bundle trusts, or by the
// new CA the holder names by fingerprint; a bundle whose ca.pem adds the
// installed CA to another CA that signed a certificate of the holder's
// name is no renewal (found by a red team: it replaced the key and made
// the bundle and its contexts trust that CA).
func TestRenews(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	ca, err := pki.NewCA(pki.CARequest{CommonName: "dtls CA", KeyType: pki.ECDSAP256, Now: now})
	require.NoError(t, err)
	evil, err := pki.NewCA(pki.CARequest{CommonName: "dtls CA", KeyType: pki.ECDSAP256, Now: now})
	require.NoError(t, err)
	next, err := pki.NewCA(pki.CARequest{CommonName: "dtls CA 2", KeyType: pki.ECDSAP256, Now: now})
	require.NoError(t, err)
	bundleOf := func(signer *pki.CA, caPEM []byte, at time.Time) ([]File, *Checked) {
		cl, err := signer.Issue(pki.Request{Kind: pki.KindClient, CommonName: "alice", KeyType: pki.ECDSAP256, Now: at, Validity: 24 * time.Hour})
		require.NoError(t, err)
		meta, err := clientenv.MarshalMeta(clientenv.Meta{Name: "alice", DockerHost: "tcp://docker.example.com:2376", NotAfter: cl.Cert.NotAfter})
		require.NoError(t, err)
		files := []File{{Name: "ca.pem", Data: caPEM}, {Name: "cert.pem", Data: cl.CertPEM}, {Name: "key.pem", Data: cl.KeyPEM}, {Name: clientenv.MetaFile, Data: meta}}
		c, err := Verify(files, at.Add(time.Minute))
		require.NoError(t, err)
		return files, c
	}
	installed, _ := bundleOf(ca, ca.CertPEM, now)
	dir, err := Install(t.TempDir(), "prod", installed, false)
	require.NoError(t, err)
	later := now.Add(time.Hour)
	both := func(other *pki.CA) []byte { return append(append([]byte{}, ca.CertPEM...), other.CertPEM...) }

	files, c := bundleOf(ca, ca.CertPEM, later)
	ok, why := Renews(dir, files, c, "")
	assert.True(t, ok, why)

	files, c = bundleOf(evil, both(evil), later)
	ok, why = Renews(dir, files, c, "")
	assert.False(t, ok, "a certificate of another CA that ca.pem adds is no renewal")
	assert.Contains(t, why, "from a CA the installed bundle does not trust")
	assert.Contains(t, why, pki.Fingerprint(evil.Cert))
	ok, _ = Renews(dir, files, c, pki.Fingerprint(next.Cert))
	assert.False(t, ok, "the new CA named is not the one that signed it")

	// A CA rotation: the renewal is of the new CA, with both CAs.
	files, c = bundleOf(next, both(next), later)
	ok, why = Renews(dir, files, c, "")
	assert.False(t, ok)
	assert.Contains(t, why, "--new-ca "+pki.Fingerprint(next.Cert))
	ok, why = Renews(dir, files, c, pki.Fingerprint(next.Cert))
	assert.True(t, ok, why)

	// A genuine renewal with another CA added to its ca.pem: the bundle
	// would trust it for the daemon (a second red team round).
	files, c = bundleOf(ca, both(evil), later)
	ok, why = Renews(dir, files, c, "")
	assert.False(t, ok)
	assert.Contains(t, why, "its ca.pem adds")
	assert.Contains(t, why, pki.Fingerprint(evil.Cert))
	files, c = bundleOf(next, append(both(next), evil.CertPEM...), later)
	ok, _ = Renews(dir, files, c, pki.Fingerprint(next.Cert))
	assert.False(t, ok, "the new CA, and one more")
}

func TestParseFingerprint(t *testing.T) {
	h := "AB" + "cd"
	for len(h) < 64 {
		h += "0"
	}
	fp, err := pki.ParseFingerprint("SHA256:" + h)
	require.NoError(t, err)
	assert.Equal(t, "sha256:abcd"+h[4:], fp)
	for _, bad := range []string{"", "sha256:", "sha256:" + h[:62], "md5:" + h, h + "00", "sha256:" + h[:63] + "g"} {
		_, err := pki.ParseFingerprint(bad)
		assert.Error(t, err, bad)
	}
}
