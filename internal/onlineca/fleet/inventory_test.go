package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
)

// record is a self-signed certificate's inventory record.
func record(t *testing.T, serial int64, name, ou string, isCA bool, notBefore time.Time, st store.Status) store.Record {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour), IsCA: isCA, BasicConstraintsValid: true,
	}
	if ou != "" {
		tmpl.Subject.OrganizationalUnit = []string{ou}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	r := store.FromCert(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), store.KindOf(cert), "", "")
	r.Status = st
	return r
}

func TestInventoryRoles(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []store.Record{
		record(t, 1, "ca-old", "", true, t0, store.StatusGood),
		record(t, 2, "ca-new", "", true, t0.Add(time.Hour), store.StatusGood),
		record(t, 3, "ca-newer-superseded", "", true, t0.Add(2*time.Hour), store.StatusSuperseded),
		record(t, 4, "alice", RoleOU("developer"), false, t0, store.StatusGood),
		record(t, 5, "bob", RoleOU("admin"), false, t0, store.StatusRevoked),
		record(t, 6, "carol", "", false, t0, store.StatusGood),
		{Serial: "7", Kind: store.KindClient, Name: "dave", Status: store.StatusGood, PEM: "not a certificate"},
	}
	roles, current := InventoryRoles(recs)
	assert.Equal(t, map[string]string{"alice": "developer"}, roles, "only good certificates with a role count")
	assert.Equal(t, "2", current, "the good CA issued last is the current one")
}
