package crashtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckCleanRun runs every command once, none killed, and Check must
// find nothing after each: the checker does not flag a healthy install.
func TestCheckCleanRun(t *testing.T) {
	t.Parallel()
	in := newInstall(t)
	in.setUp(t)
	k := &Checker{Layout: in.l}
	b := in.l.Bundles
	steps := [][]string{
		nil, // the set-up
		in.with("issue-client", "dave", "erin", "--out", b),
		in.with("issue-client", "alice", "--out", filepath.Join(b, "alice"), "--force"),
		in.with("renew", "bob"),
		in.with("renew", "--server"),
		in.with("revoke", "carol"),
		in.with("crl"),
		in.with("renew", "--expiring", "10000d"),
		in.with("rotate-ca"),
		in.with("revoke", "dave"), // of the old CA, during the rotation
		in.with("issue-client", "frank", "--out", filepath.Join(b, "frank")),
		in.with("revoke", "frank"), // of the new CA
		in.with("crl"),
		in.initArgs(),
		in.with("renew", "alice"),    // now of the new CA; erin stays with the old
		in.with("renew", "--server"), // still of the old CA: step 1
		in.with("rotate-ca", "--switch", "--force"),
		in.initArgs(), // keeps the server certificate of the new CA
		in.with("renew", "--expiring", "10000d"),
		in.with("rotate-ca", "--finish", "--force"),
		in.with("revoke", "alice"),
		in.with("issue-client", "hank", "--out", filepath.Join(b, "hank")),
		in.initArgs("--force"), // hank's CA is gone, his bundle stays whole
		in.with("issue-client", "gina", "--out", filepath.Join(b, "gina")),
		in.with("rotate-ca"), // must not rewrite hank's ca.pem with CAs that did not sign him
		in.with("rotate-ca", "--switch", "--force"),
		in.with("rotate-ca", "--finish", "--force"),
		in.initArgs(),
	}
	for _, args := range steps {
		if args != nil {
			in.mustRun(t, args...)
		}
		recs, res, err := in.list()
		require.NoError(t, err)
		assert.Empty(t, strings.TrimSpace(res.stderr), "after dtls %s: nothing to recover", strings.Join(args, " "))
		assert.NoError(t, k.Check(recs), "after dtls %s", strings.Join(args, " "))
	}
}

// TestCheckFindsBrokenState breaks a healthy install (mid-rotation, with
// revocations under both CAs) in one way at a time, and Check must say so:
// every check can fail.
func TestCheckFindsBrokenState(t *testing.T) {
	t.Parallel()
	in := newInstall(t)
	in.setUp(t)
	in.mustRun(t, in.with("revoke", "bob")...)
	olderCRL, err := os.ReadFile(filepath.Join(in.l.StateDir, crlFile))
	require.NoError(t, err)
	in.mustRun(t, in.with("rotate-ca")...)
	in.mustRun(t, in.with("issue-client", "dave", "erin", "--out", in.l.Bundles)...)
	in.mustRun(t, in.with("revoke", "erin")...)
	healthy, _, err := in.list()
	require.NoError(t, err)
	require.NoError(t, Check(in.l, healthy), "the fixture itself")

	foreignCA := newForeignCA(t)
	type env struct {
		t    *testing.T
		l    Layout
		recs []Record
		k    *Checker
	}
	// path is a file of the broken copy.
	p := func(e *env, rel string) string { return filepath.Join(e.l.Root, rel) }
	replace := func(e *env, rel string, data []byte) {
		path := p(e, rel)
		fi, err := os.Stat(path)
		require.NoError(e.t, err)
		require.NoError(e.t, os.Chmod(path, 0o600))
		require.NoError(e.t, os.WriteFile(path, data, 0o600))
		require.NoError(e.t, os.Chmod(path, fi.Mode().Perm()))
	}
	read := func(e *env, rel string) []byte {
		b, err := os.ReadFile(p(e, rel))
		require.NoError(e.t, err)
		return b
	}
	// record is the good record of kind and name (any name when "").
	record := func(e *env, kind, name string) *Record {
		for i := range e.recs {
			if e.recs[i].Kind == kind && (name == "" || e.recs[i].Name == name) && e.recs[i].Good() {
				return &e.recs[i]
			}
		}
		e.t.Fatalf("no good %s record %q", kind, name)
		return nil
	}
	// serial is a good record's serial in the healthy install.
	serial := func(kind, name string) string { return record(&env{t: t, recs: healthy}, kind, name).Serial }
	for _, tc := range []struct {
		name   string
		mutate func(e *env)
		want   []string
	}{
		// Who serves TCP.
		{"gateway unit without gateway mode", func(e *env) {
			require.NoError(e.t, os.WriteFile(p(e, "systemd/dtls-gateway.socket"), []byte("[Socket]\nListenStream=2376\n"), 0o644))
		}, []string{"server.json records dockerd's own listener but dtls-gateway.socket is there"}},
		{"gateway mode without its units", func(e *env) {
			replace(e, "state/server.json", []byte(`{"mode": "gateway"}`))
		}, []string{"server.json records gateway mode but dtls-gateway.socket is missing", "dockerd listens on TCP in gateway mode"}},
		// The CA pairs.
		{"CA key of another certificate", func(e *env) { replace(e, "state/ca-key.pem", read(e, "state/ca-old-key.pem")) },
			[]string{"state/ca-key.pem does not match state/ca.pem"}},
		{"old CA certificate without its key", func(e *env) { require.NoError(e.t, os.Remove(p(e, "state/ca-old-key.pem"))) },
			[]string{"state/ca-old.pem exists without its key state/ca-old-key.pem"}},
		{"old CA key without its certificate", func(e *env) { require.NoError(e.t, os.Remove(p(e, "state/ca-old.pem"))) },
			[]string{"state/ca-old-key.pem exists without its certificate state/ca-old.pem"}},
		{"no CA", func(e *env) {
			require.NoError(e.t, os.Remove(p(e, "state/ca.pem")))
			require.NoError(e.t, os.Remove(p(e, "state/ca-key.pem")))
		}, []string{"state/ca.pem and state/ca-key.pem are both missing"}},
		{"CA key not PEM", func(e *env) { replace(e, "state/ca-key.pem", []byte("garbage")) },
			[]string{"state/ca-key.pem: no PEM private key"}},
		{"CA key readable by all", func(e *env) { require.NoError(e.t, os.Chmod(p(e, "state/ca-key.pem"), 0o444)) },
			[]string{"state/ca-key.pem has mode -r--r--r--, want a regular file with mode 0400 or 0600"}},
		{"state directory readable by all", func(e *env) { require.NoError(e.t, os.Chmod(p(e, "state"), 0o755)) },
			[]string{"state has mode drwxr-xr-x, want a directory with mode 0700"}},

		// The daemon's files.
		{"server key of another certificate", func(e *env) { replace(e, "certs/server-key.pem", read(e, "bundles/srv1/server-key.pem")) },
			[]string{"certs/server-key.pem does not match certs/server-cert.pem"}},
		{"server certificate of another CA", func(e *env) {
			cert, key := signServer(e.t, nil, nil)
			replace(e, "certs/server-cert.pem", cert)
			replace(e, "certs/server-key.pem", key)
		}, []string{
			"certs/server-cert.pem (serial 5e4e) is not issued by the current CA state/ca.pem (serial " + caSerial(t, in.l) + "), nor by the old one",
			"certs/server-cert.pem does not verify for serverAuth against certs/ca.pem",
			`server record "localhost" serial ` + serial("server", "localhost") + ` (valid): certs/server-cert.pem holds serial 5e4e`,
		}},
		{"issue-server bundle of the new CA before --switch", func(e *env) {
			caCerts, err := ParseCertificates(read(e, "state/ca.pem"))
			require.NoError(e.t, err)
			caKey, err := ParsePrivateKey(read(e, "state/ca-key.pem"))
			require.NoError(e.t, err)
			cert, key := signServer(e.t, caCerts[0], caKey)
			replace(e, "bundles/srv1/server-cert.pem", cert)
			replace(e, "bundles/srv1/server-key.pem", key)
		}, []string{"bundles/srv1/server-cert.pem (serial 5e4e) is of the current CA while the daemon's server-cert.pem is still of the old one (step 1 of a rotation)"}},
		{"client of the current CA that cannot verify the daemon", func(e *env) {
			replace(e, "certs/server-cert.pem", read(e, "bundles/srv1/server-cert.pem"))
			replace(e, "certs/server-key.pem", read(e, "bundles/srv1/server-key.pem"))
			replace(e, "bundles/dave/ca.pem", read(e, "state/ca.pem"))
		}, []string{"bundles/dave/ca.pem of a client of the current CA does not verify the daemon's server-cert.pem (serial " + serial("server", "srv1") + ")"}},
		{"daemon's ca.pem without the old CA", func(e *env) { replace(e, "certs/ca.pem", read(e, "state/ca.pem")) },
			[]string{"certs/ca.pem does not hold state/ca-old.pem"}},
		{"daemon's ca.pem trusts another CA", func(e *env) { replace(e, "certs/ca.pem", append(read(e, "certs/ca.pem"), foreignCA...)) },
			[]string{"certs/ca.pem trusts CA serial 7357, which is neither ca.pem nor ca-old.pem"}},
		{"server certificate does not verify", func(e *env) { replace(e, "certs/ca.pem", foreignCA) },
			[]string{"certs/server-cert.pem does not verify for serverAuth against certs/ca.pem", "certs/ca.pem does not hold state/ca.pem"}},
		{"daemon.json without tlsverify", func(e *env) {
			var cfg map[string]any
			require.NoError(e.t, json.Unmarshal(read(e, "daemon.json"), &cfg))
			cfg["tlsverify"] = false
			b, err := json.Marshal(cfg)
			require.NoError(e.t, err)
			replace(e, "daemon.json", b)
		}, []string{`daemon.json: "tlsverify" is false, want true`}},
		{"daemon.json cut short", func(e *env) { replace(e, "daemon.json", read(e, "daemon.json")[:20]) },
			[]string{"daemon.json is not a JSON object"}},

		// Bundles.
		{"bundle key readable by all", func(e *env) { require.NoError(e.t, os.Chmod(p(e, "bundles/alice/key.pem"), 0o644)) },
			[]string{"bundles/alice/key.pem has mode -rw-r--r--"}},
		{"bundle directory readable by all", func(e *env) { require.NoError(e.t, os.Chmod(p(e, "bundles/alice"), 0o755)) },
			[]string{"bundles/alice has mode drwxr-xr-x, want a directory with mode 0700"}},
		{"bundle key of another certificate", func(e *env) { replace(e, "bundles/alice/key.pem", read(e, "bundles/carol/key.pem")) },
			[]string{"bundles/alice/key.pem does not match bundles/alice/cert.pem"}},
		{"server bundle key of another certificate", func(e *env) { replace(e, "bundles/srv1/server-key.pem", read(e, "certs/server-key.pem")) },
			[]string{"bundles/srv1/server-key.pem does not match bundles/srv1/server-cert.pem"}},
		{"half a bundle", func(e *env) { require.NoError(e.t, os.Remove(p(e, "bundles/alice/ca.pem"))) },
			[]string{"bundle bundles/alice is missing ca.pem"}},
		{"bundle CA that did not sign it", func(e *env) { replace(e, "bundles/alice/ca.pem", foreignCA) },
			[]string{"bundles/alice/cert.pem does not verify against the bundle's ca.pem"}},
		{"server certificate in a client bundle", func(e *env) {
			replace(e, "bundles/carol/cert.pem", read(e, "bundles/srv1/server-cert.pem"))
			replace(e, "bundles/carol/key.pem", read(e, "bundles/srv1/server-key.pem"))
		}, []string{"bundles/carol/cert.pem does not verify against the bundle's ca.pem: x509: certificate specifies an incompatible key usage"}},
		{"dtls.json of another certificate", func(e *env) { replace(e, "bundles/alice/dtls.json", read(e, "bundles/carol/dtls.json")) },
			[]string{"bundles/alice/dtls.json names serial"}},
		{"empty directory among the bundles", func(e *env) { require.NoError(e.t, os.Mkdir(p(e, "bundles/empty"), 0o700)) },
			[]string{"bundles/empty is neither a client bundle"}},
		{"file among the bundles", func(e *env) { require.NoError(e.t, os.WriteFile(p(e, "bundles/notes"), nil, 0o600)) },
			[]string{"bundles/notes is not a bundle directory"}},

		// Records against files.
		{"record whose bundle holds another certificate", func(e *env) {
			require.NoError(e.t, os.RemoveAll(p(e, "bundles/alice")))
			require.NoError(e.t, os.Rename(p(e, "bundles/carol"), p(e, "bundles/alice")))
		}, []string{`client record "alice" serial ` + serial("client", "alice") + ` (valid): bundles/alice/cert.pem holds serial`,
			`client record "carol"`}},
		{"record whose bundle is gone", func(e *env) { require.NoError(e.t, os.RemoveAll(p(e, "bundles/dave"))) },
			[]string{`client record "dave" serial ` + serial("client", "dave") + ` (valid): its file is missing`}},
		{"issue-server record whose bundle holds another certificate", func(e *env) { record(e, "server", "srv1").Serial = "1234" },
			[]string{`server record "srv1" serial 1234 (valid): bundles/srv1/server-cert.pem holds serial`}},
		{"current CA not in the inventory", func(e *env) { record(e, "ca", "").Status = "superseded" },
			[]string{"state/ca.pem (serial " + caSerial(t, in.l) + ") has no good ca record in the inventory"}},
		{"good CA record of another CA", func(e *env) { record(e, "ca", "").Serial = "abcdef" },
			[]string{`ca record`, `serial abcdef (valid): state/ca.pem holds serial`}},

		// crl.pem.
		{"revoked serial missing from crl.pem", func(e *env) { record(e, "client", "dave").Status = "revoked" },
			[]string{`the CRL of ca.pem (serial ` + caSerial(t, in.l) + `, number`, `lacks revoked client "dave" serial`}},
		{"revoked serial of the old CA missing from crl.pem", func(e *env) { record(e, "client", "alice").Status = "revoked" },
			[]string{`the CRL of ca-old.pem`, `lacks revoked client "alice" serial`}},
		{"crl.pem lists a serial the inventory has as good", func(e *env) {
			for i := range e.recs {
				if e.recs[i].Name == "erin" {
					e.recs[i].Status = "valid"
				}
			}
		}, []string{`the CRL of ca.pem (serial ` + caSerial(t, in.l) + `) in state/crl.pem lists serial`, "which the inventory does not have as revoked"}},
		{"no crl.pem", func(e *env) { require.NoError(e.t, os.Remove(p(e, "state/crl.pem"))) },
			[]string{"state/crl.pem has no CRL signed by ca.pem", "state/crl.pem has no CRL signed by ca-old.pem"}},
		{"two CRLs of one CA", func(e *env) {
			replace(e, "state/crl.pem", append(read(e, "state/crl.pem"), read(e, "state/crl.pem")...))
		},
			[]string{"state/crl.pem holds two CRLs signed by ca.pem", "state/crl.pem holds two CRLs signed by ca-old.pem"}},
		{"crl.pem with a certificate in it", func(e *env) { replace(e, "state/crl.pem", append(read(e, "state/crl.pem"), foreignCA...)) },
			[]string{`state/crl.pem holds a "CERTIFICATE" PEM block`}},
		{"crl.pem with trailing junk", func(e *env) { replace(e, "state/crl.pem", append(read(e, "state/crl.pem"), "junk"...)) },
			[]string{"state/crl.pem has trailing data that is not PEM"}},
		{"CRL number goes down", func(e *env) {
			require.NoError(e.t, e.k.Check(e.recs))
			replace(e, "state/crl.pem", olderCRL)
		}, []string{"state/crl.pem: the CRL number of the CA with key id", "went down from"}},
		{"CRL past its nextUpdate", func(e *env) { e.k.Now = func() time.Time { return time.Now().AddDate(0, 4, 0) } },
			[]string{"state/crl.pem: a CRL (number"}},

		// Leftovers.
		{"temporary file", func(e *env) { require.NoError(e.t, os.WriteFile(p(e, "state/.crl.pem.tmp-123"), nil, 0o600)) },
			[]string{"leftover state/.crl.pem.tmp-123"}},
		{"bundle moved aside", func(e *env) { require.NoError(e.t, os.Rename(p(e, "bundles/alice"), p(e, "bundles/.alice.tmp-9.old"))) },
			[]string{"leftover bundles/.alice.tmp-9.old", `client record "alice"`}},
		{"old file", func(e *env) { require.NoError(e.t, os.WriteFile(p(e, "certs/ca.pem.old"), nil, 0o600)) },
			[]string{"leftover certs/ca.pem.old"}},
		{"journal left", func(e *env) {
			require.NoError(e.t, os.MkdirAll(p(e, "state/journal"), 0o700))
			require.NoError(e.t, os.WriteFile(p(e, "state/journal/0123.json"), []byte("{}"), 0o600))
		}, []string{"journal entry state/journal/0123.json is still there after the next command"}},
		{"journal left with a key in it", func(e *env) {
			require.NoError(e.t, os.MkdirAll(p(e, "state/journal"), 0o700))
			j, err := json.Marshal(map[string][]byte{"key_pem": read(e, "certs/server-key.pem")})
			require.NoError(e.t, err)
			require.NoError(e.t, os.WriteFile(p(e, "state/journal/.0123.json.tmp-1"), j[:len(j)-9], 0o600))
		}, []string{
			"leftover state/journal/.0123.json.tmp-1 (it holds a private key)",
			"journal entry state/journal/.0123.json.tmp-1 is still there after the next command (it holds a private key)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, l: NewLayout(t.TempDir())}
			e.recs = copyInstall(t, in.l, e.l, healthy)
			e.k = &Checker{Layout: e.l}
			require.NoError(t, e.k.Check(e.recs), "the copy before it is broken")
			e.k = &Checker{Layout: e.l}
			tc.mutate(e)
			err := e.k.Check(e.recs)
			require.Error(t, err)
			var ps Problems
			require.True(t, errors.As(err, &ps), "Check returns Problems")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestParsePrivateKey reads every key format dtls and openssl write.
func TestParsePrivateKey(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	sec1, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	for typ, der := range map[string][]byte{"EC PRIVATE KEY": sec1, "PRIVATE KEY": pkcs8} {
		got, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
		require.NoError(t, err, typ)
		assert.True(t, k.PublicKey.Equal(got.Public()), typ)
	}
	_, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}))
	assert.ErrorIs(t, err, ErrEncryptedKey)
	_, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))
	assert.EqualError(t, err, `PEM block "CERTIFICATE" is not a private key`)
}

// newForeignCA is a self-signed CA (serial 0x7357) that dtls never made.
func newForeignCA(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(0x7357),
		Subject:               pkix.Name{CommonName: "not a dtls CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// caSerial is the serial of l's state/ca.pem.
func caSerial(t *testing.T, l Layout) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.StateDir, caCertFile))
	require.NoError(t, err)
	certs, err := ParseCertificates(b)
	require.NoError(t, err)
	return serialHex(certs[0].SerialNumber)
}

// signServer issues a server certificate (serial 0x5e4e) for localhost
// with ca and its key, or, when ca is nil, with a CA dtls never made.
func signServer(t *testing.T, ca *x509.Certificate, caKey crypto.Signer) (certPEM, keyPEM []byte) {
	t.Helper()
	if ca == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(0x7357), Subject: pkix.Name{CommonName: "not a dtls CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		require.NoError(t, err)
		ca, err = x509.ParseCertificate(der)
		require.NoError(t, err)
		caKey = k
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x5e4e), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}
