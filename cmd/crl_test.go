package cmd

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/fixture"
)

// TestCRLRefresh: 'dtls crl' signs the same revocations again with a later
// nextUpdate and a higher number, so a proxy that checks CRLs keeps
// accepting the clients that are not revoked.
func TestCRLRefresh(t *testing.T) {
	state, flags := newInstall(t)
	now := time.Now()
	_, errOut, code := dtls(t, now, append([]string{"issue-client", "bob", "--out", filepath.Join(t.TempDir(), "bob")}, flags...)...)
	require.Equal(t, 0, code, errOut)
	_, errOut, code = dtls(t, now, append([]string{"revoke", "bob"}, flags...)...)
	require.Equal(t, 0, code, errOut)
	first := readCRL(t, state)

	later := now.Add(60 * 24 * time.Hour)
	_, errOut, code = dtls(t, later, append([]string{"crl"}, flags...)...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "(1 revoked)")
	second := readCRL(t, state)

	assert.True(t, second.NextUpdate.After(first.NextUpdate), "nextUpdate %v, then %v", first.NextUpdate, second.NextUpdate)
	assert.True(t, second.NextUpdate.After(later))
	assert.Equal(t, 1, second.Number.Cmp(first.Number), "CRL number %v, then %v", first.Number, second.Number)
	require.Len(t, second.RevokedCertificateEntries, 1)
	assert.Equal(t, first.RevokedCertificateEntries[0].SerialNumber, second.RevokedCertificateEntries[0].SerialNumber)

	// Before init there is nothing to sign.
	_, errOut, code = dtls(t, now, "crl", "--state-dir", filepath.Join(t.TempDir(), "none"))
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "does not exist")
}

func readCRL(t *testing.T, state string) *x509.RevocationList {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, authority.CRLFile))
	require.NoError(t, err)
	l, err := fixture.ParseCRL(b)
	require.NoError(t, err)
	return l
}
