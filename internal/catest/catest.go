// Package catest runs a real online CA (package caserver) for tests of
// other packages: a new CA, its inventory (SQLite in the test's temporary
// directory, or a PostgreSQL database), and the server on a loopback HTTPS
// listener with a certificate for 127.0.0.1 and localhost from that CA.
// Everything is stopped and removed when the test ends.
//
// It is a library for tests: it prints nothing and ends a test only
// through t.Fatal when the CA cannot be set up.
package catest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// Options tune Start. The zero value is a CA with the default validities,
// the real clock and an SQLite inventory.
type Options struct {
	// ClientValidity is the lifetime of client certificates
	// (fleet.DefaultClientValidity when zero).
	ClientValidity time.Duration
	// Now is the CA's clock for certificates, tokens and revocations
	// (time.Now when nil). TLS handshakes use the real clock: the CA and
	// the listener's certificate are valid from five minutes before the
	// earlier of the two, for ten years.
	Now func() time.Time
	// DSN, when set, is a PostgreSQL database for the inventory (such
	// as pgsandbox.Start returns).
	DSN string
	// MaxListedRenewals is caserver.Config's (its default when zero, no
	// bound when negative).
	MaxListedRenewals int
	// CA and DBPath, when set, are the CA and the SQLite inventory of
	// another CA of the test: this one is that CA restarted (or a second
	// instance of it), with a listener of its own.
	CA     *pki.CA
	DBPath string
	// ListenerHosts are names the listener's certificate covers besides
	// 127.0.0.1 and localhost.
	ListenerHosts []string
}

// CA is a running online CA.
type CA struct {
	// URL is the server's base URL, https://127.0.0.1:PORT (no trailing
	// slash): join it with fleet's paths.
	URL string
	// CACert and CAPEM are the CA certificate, which the listener's
	// certificate chains to.
	CACert *x509.Certificate
	CAPEM  []byte
	// PKI is the CA with its key, for tests that sign something
	// themselves.
	PKI    *pki.CA
	Server *caserver.Server
	// Store is the inventory the server writes; tests may read it and
	// write to it (revoke, set roles) as another process would.
	Store *store.Store
	// DBPath is the SQLite inventory's file ("" on PostgreSQL).
	DBPath string

	mu        sync.Mutex
	operators int
}

// Start starts a CA and stops it when t ends.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	now := o.Now
	if now == nil {
		now = time.Now
	}
	issued := time.Now()
	if n := now(); n.Before(issued) {
		issued = n
	}
	ca := o.CA
	var err error
	if ca == nil {
		if ca, err = pki.NewCA(pki.CARequest{CommonName: "dtls catest CA", Now: issued}); err != nil {
			t.Fatalf("catest: %v", err)
		}
	}
	var st *store.Store
	dbPath := o.DBPath
	switch {
	case o.DSN != "":
		st, err = store.OpenPostgres(o.DSN)
	case dbPath != "":
		st, err = store.Open(dbPath)
	default:
		dbPath = filepath.Join(t.TempDir(), "dtls-ca.db")
		st, err = store.Open(dbPath)
	}
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := caserver.New(caserver.Config{Store: st, CA: ca, ClientValidity: o.ClientValidity, MaxListedRenewals: o.MaxListedRenewals, Now: o.Now})
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	listener, err := ca.Issue(pki.Request{Kind: pki.KindServer, CommonName: "127.0.0.1", Hosts: append([]string{"127.0.0.1", "localhost"}, o.ListenerHosts...), Now: issued})
	if err != nil {
		t.Fatalf("catest: listener certificate: %v", err)
	}
	if err := st.Apply(store.Change{Insert: []store.Record{
		store.FromCert(listener.Cert, listener.CertPEM, store.KindServer, pki.Serial(ca.Cert), ""),
	}}); err != nil {
		t.Fatalf("catest: %v", err)
	}
	tc, err := srv.TLSConfig(listener.CertPEM, listener.KeyPEM)
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	hs := srv.HTTPServer(tc)
	served := make(chan error, 1)
	go func() { served <- hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("catest: shut the CA down: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("catest: serve: %v", err)
		}
	})
	return &CA{
		URL:    "https://" + ln.Addr().String(),
		CACert: ca.Cert, CAPEM: ca.CertPEM, PKI: ca,
		Server: srv, Store: st, DBPath: dbPath,
	}
}

// Token makes an enrolment token as `dtls ca token` does.
func (c *CA) Token(t testing.TB, req fleet.TokenRequest) string {
	t.Helper()
	resp, err := c.Server.NewToken(req)
	if err != nil {
		t.Fatalf("catest: token: %v", err)
	}
	return resp.Token
}

// Operator issues an operator's client certificate (role
// fleet.OperatorRole, recorded in the inventory), named operator-N, with
// a new key.
func (c *CA) Operator(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	c.mu.Lock()
	c.operators++
	name := fmt.Sprintf("operator-%d", c.operators)
	c.mu.Unlock()
	return c.Client(t, name, fleet.OperatorRole)
}

// Client issues a client certificate for name with role (recorded in the
// inventory, and in the certificate as the online CA does), with a new
// key, without a token.
func (c *CA) Client(t testing.TB, name, role string) (certPEM, keyPEM []byte) {
	t.Helper()
	csrPEM, keyPEM, err := pki.NewCSR(name, "")
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	req := pki.CSRRequest{Kind: pki.KindClient, CommonName: name, CSR: csrPEM, Now: time.Now()}
	if role != "" {
		req.OrganizationalUnit = []string{fleet.RoleOU(role)}
	}
	cert, certPEM, err := c.PKI.SignCSR(req)
	if err != nil {
		t.Fatalf("catest: %v", err)
	}
	if err := c.Store.Apply(store.Change{
		Insert: []store.Record{store.FromCert(cert, certPEM, store.KindClient, pki.Serial(c.CACert), "")},
		Roles:  map[string]string{name: role},
	}); err != nil {
		t.Fatalf("catest: %v", err)
	}
	return certPEM, keyPEM
}

// HTTPClient is a client that trusts the CA and, when certPEM is not nil,
// presents certPEM and keyPEM as its client certificate.
func (c *CA) HTTPClient(t testing.TB, certPEM, keyPEM []byte) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(c.CACert)
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatalf("catest: client certificate: %v", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
