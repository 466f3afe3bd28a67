package caserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
)

// hostileCSR is a CSR, with its key, that asks for everything a
// certificate of the fleet must not get from its holder: the admin role
// in its OU, another organisation and subject fields, SANs of every type,
// and extensions (code signing, a private one).
func hostileCSR(t *testing.T) (csrPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ekuCodeSigning, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 3}})
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{
			CommonName: "root", Organization: []string{"evil"}, OrganizationalUnit: []string{fleet.RoleOU("admin")},
			Country: []string{"XX"}, Province: []string{"P"}, Locality: []string{"L"}, StreetAddress: []string{"S"},
			PostalCode: []string{"0"}, SerialNumber: "42",
		},
		DNSNames:       []string{"evil.example"},
		IPAddresses:    []net.IP{net.ParseIP("6.6.6.6")},
		URIs:           []*url.URL{{Scheme: "spiffe", Host: "evil", Path: "/admin"}},
		EmailAddresses: []string{"evil@example.com"},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: ekuCodeSigning},
			{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: []byte{0x05, 0x00}},
		},
	}, key)
	require.NoError(t, err)
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// assertOnlyCAFields checks that cert has the subject and names the CA
// chose and nothing of hostileCSR: subject CN and O=dtls (and OU the
// role for a client), the token's hosts as SANs, and the extensions of
// pki's profiles only.
func assertOnlyCAFields(t *testing.T, cert *x509.Certificate, cn string, ou []string, dns []string, ips []string) {
	t.Helper()
	s := cert.Subject
	assert.Equal(t, cn, s.CommonName)
	assert.Equal(t, []string{"dtls"}, s.Organization)
	assert.Equal(t, ou, s.OrganizationalUnit)
	assert.Empty(t, s.Country)
	assert.Empty(t, s.Province)
	assert.Empty(t, s.Locality)
	assert.Empty(t, s.StreetAddress)
	assert.Empty(t, s.PostalCode)
	assert.Empty(t, s.SerialNumber)
	// Every attribute of the subject: CN, O and the OU given.
	assert.Len(t, s.Names, 2+len(ou), "subject %v", s.Names)
	assert.Equal(t, dns, cert.DNSNames)
	var gotIPs []string
	for _, ip := range cert.IPAddresses {
		gotIPs = append(gotIPs, ip.String())
	}
	assert.Equal(t, ips, gotIPs)
	assert.Empty(t, cert.URIs)
	assert.Empty(t, cert.EmailAddresses)
	assert.NotContains(t, cert.ExtKeyUsage, x509.ExtKeyUsageCodeSigning)
	assert.Len(t, cert.ExtKeyUsage, 1)
	// keyUsage, extKeyUsage, basicConstraints, the key identifiers, and
	// SANs when there are hosts.
	allowed := map[string]bool{"2.5.29.15": true, "2.5.29.37": true, "2.5.29.19": true, "2.5.29.14": true, "2.5.29.35": true, "2.5.29.17": len(dns)+len(ips) > 0}
	for _, e := range cert.Extensions {
		assert.True(t, allowed[e.Id.String()], "extension %s in the certificate", e.Id)
	}
	role, ok := fleet.CertRole(cert)
	assert.NotEqual(t, "admin", role, "role from the CSR (ok %v)", ok)
}

// TestCSRGivesOnlyItsKey: the online CA takes the public key of a CSR
// and nothing else, at enrolment (client and host) and at renewal: the
// subject, SANs and extensions of a certificate are the token's or the
// renewed certificate's.
func TestCSRGivesOnlyItsKey(t *testing.T) {
	ca := catest.Start(t, catest.Options{})

	// Client: CN and role from the token.
	csr, key := hostileCSR(t)
	c := do(t, ca.HTTPClient(t, nil, nil), http.MethodPost, ca.URL+fleet.PathEnroll,
		fleet.EnrollRequest{Token: ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"}), CSR: string(csr)})
	cr, cert := certOf(t, c)
	assertOnlyCAFields(t, cert, "alice", []string{fleet.RoleOU("developer")}, nil, nil)
	assert.Equal(t, "developer", cr.Role)

	// Its renewal: CN from the certificate, role from the inventory.
	csr2, _ := hostileCSR(t)
	r, _ := renew(t, ca, []byte(cr.Certificate), key, csr2)
	rr, cert := certOf(t, r)
	assertOnlyCAFields(t, cert, "alice", []string{fleet.RoleOU("developer")}, nil, nil)
	assert.Equal(t, "developer", rr.Role)

	// Host: CN and SANs from the token; no OU, no role.
	csr, key = hostileCSR(t)
	c = do(t, ca.HTTPClient(t, nil, nil), http.MethodPost, ca.URL+fleet.PathEnroll,
		fleet.EnrollRequest{Token: ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker1.example", Hosts: []string{"10.0.0.7"}}), CSR: string(csr)})
	cr, cert = certOf(t, c)
	assertOnlyCAFields(t, cert, "docker1.example", nil, []string{"docker1.example"}, []string{"10.0.0.7"})
	assert.Empty(t, cr.Role)

	// Its renewal: the same hosts.
	csr2, _ = hostileCSR(t)
	r, _ = renew(t, ca, []byte(cr.Certificate), key, csr2)
	rr, cert = certOf(t, r)
	assertOnlyCAFields(t, cert, "docker1.example", nil, []string{"docker1.example"}, []string{"10.0.0.7"})
	assert.Empty(t, rr.Role)
}
