package cmd

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// flLaptopEnv is a laptop's environment in a temporary directory: the bundle
// store and the Docker CLI's configuration.
func flLaptopEnv(t *testing.T) (env map[string]string, root, cfg string) {
	dir := t.TempDir()
	root, cfg = filepath.Join(dir, "store"), filepath.Join(dir, "docker")
	return map[string]string{"HOME": filepath.Join(dir, "home"), clientenv.EnvHome: root, "DOCKER_CONFIG": cfg}, root, cfg
}

func flMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func flEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func flRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// flClosedURL is the URL of a port nothing listens on.
func flClosedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "https://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	return u
}

// flOperatorDir writes an operator's bundle of ca into a directory.
func flOperatorDir(t *testing.T, ca *catest.CA) string {
	t.Helper()
	certPEM, keyPEM := ca.Operator(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CAPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600))
	return dir
}

// TestEnrollCommand: 'dtls enroll' installs the bundle in the store (modes
// of 'dtls import'), makes it the default, writes the docker context, and
// says what to run next. The bundle's key is the one the CA's
// certificate is for, and the CA holds only the certificate.
func TestEnrollCommand(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	env, root, cfg := flLaptopEnv(t)
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"})
	_, stderr, code := runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok, "--docker-host", "tcp://docker1.example.com:2376", "--context", "prod")
	require.Equal(t, 0, code, stderr)
	dir := filepath.Join(root, "docker1.example.com")
	assert.Contains(t, stderr, `enrolled client "alice" (role developer) with the CA at `+ca.URL)
	assert.Contains(t, stderr, "wrote bundle "+dir)
	assert.Contains(t, stderr, `default bundle is now "docker1.example.com"`)
	assert.Contains(t, stderr, `wrote docker context "prod"`)
	assert.Contains(t, stderr, `eval "$(dtls env)"`)
	assert.Contains(t, stderr, "dtls agent")

	assert.Equal(t, os.FileMode(0o700), flMode(t, root))
	assert.Equal(t, os.FileMode(0o700), flMode(t, dir))
	assert.Equal(t, os.FileMode(0o600), flMode(t, filepath.Join(dir, "key.pem")))
	for _, f := range []string{"ca.pem", "cert.pem", "dtls.json"} {
		assert.Equal(t, os.FileMode(0o644), flMode(t, filepath.Join(dir, f)), f)
	}
	assert.ElementsMatch(t, []string{"default", "docker1.example.com"}, flEntries(t, root), "no saved key or temporary directory left")
	b, err := clientenv.LoadBundle(dir)
	require.NoError(t, err)
	assert.Equal(t, ca.URL, b.Meta.CAURL)
	assert.Equal(t, "tcp://docker1.example.com:2376", b.Meta.DockerHost)
	assert.Equal(t, "alice", b.Meta.Name)

	// The key is this machine's: the certificate the CA recorded is for
	// it, and the CA's record holds no key.
	key, err := pki.ParsePrivateKey(flRead(t, filepath.Join(dir, "key.pem")))
	require.NoError(t, err)
	rec, err := ca.Store.Get(b.Meta.Serial)
	require.NoError(t, err)
	require.NotNil(t, rec)
	cert, err := rec.Cert()
	require.NoError(t, err)
	assert.True(t, pki.KeyMatches(cert, key))
	assert.NotContains(t, rec.PEM, "PRIVATE KEY")
	assert.Equal(t, string(flRead(t, filepath.Join(dir, "cert.pem"))), rec.PEM)

	// The docker context holds the bundle's files.
	_, tlsDir := dockercontext.Paths(cfg, "prod")
	assert.Equal(t, string(flRead(t, filepath.Join(dir, "cert.pem"))), string(flRead(t, filepath.Join(tlsDir, "docker", "cert.pem"))))
	assert.Equal(t, os.FileMode(0o600), flMode(t, filepath.Join(tlsDir, "docker", "key.pem")))

	// dtls env uses it, and does not warn about a day's certificate
	// that the agent renews; only about one the agent has left to
	// expire.
	out, stderr, code := runWithEnv(t, time.Now(), env, "env", "--shell", "bash")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "export DOCKER_HOST='tcp://docker1.example.com:2376'")
	assert.Contains(t, out, "export DOCKER_CERT_PATH='"+dir+"'")
	assert.NotContains(t, stderr, "warning: the certificate")
	_, stderr, code = runWithEnv(t, b.Meta.NotAfter.Add(-30*time.Minute), env, "env", "--shell", "bash")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "was not renewed: is 'dtls agent' running?")

	// The same token again: refused by the CA, nothing written.
	_, stderr, code = runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok, "--docker-host", "tcp://docker2.example.com:2376")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "dtls: error: the CA at "+ca.URL+" refused the enrolment: enrolment token already used")
	assert.Contains(t, stderr, "nothing was changed")
	assert.ElementsMatch(t, []string{"default", "docker1.example.com"}, flEntries(t, root))

	// A bundle of that name already there: refused before the token is
	// used.
	tok2 := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice"})
	_, stderr, code = runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok2, "--docker-host", "tcp://docker1.example.com:2376")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "already exists")
	assert.Contains(t, stderr, "dtls: hint: the token was not used")
	_, stderr, code = runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok2, "--docker-host", "tcp://docker1.example.com:2376", "--force")
	require.Equal(t, 0, code, stderr)
	// alice enrolled again: her first certificate is superseded.
	assert.Contains(t, stderr, `superseded the older certificate(s) of "alice" at the CA: serial `+b.Meta.Serial+" (they no longer work")
	rec, err2 := ca.Store.Get(b.Meta.Serial)
	require.NoError(t, err2)
	assert.Equal(t, store.StatusSuperseded, rec.Status)
	assert.Contains(t, stderr, `wrote docker context "prod"`, "the context made from the bundle follows it")
	assert.Equal(t, string(flRead(t, filepath.Join(dir, "cert.pem"))), string(flRead(t, filepath.Join(tlsDir, "docker", "cert.pem"))))
}

// TestEnrollCommandWritesNothingOnFailure: a CA that is down, and a server
// that is not the token's CA, fail with their error and leave no file.
func TestEnrollCommandWritesNothingOnFailure(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	other := catest.Start(t, catest.Options{})
	down := flClosedURL(t)
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob"})
	foreign := other.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "bob"})
	for _, tc := range []struct {
		name, url, tok, want string
	}{
		{"CA down", down, tok, "dtls: error: cannot reach the CA at " + down + ": "},
		{"wrong CA", ca.URL, foreign, "is not the CA of the token: none of the certificates it presented has the SHA-256 fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, root, cfg := flLaptopEnv(t)
			_, stderr, code := runWithEnv(t, time.Now(), env, "enroll", tc.url, tc.tok, "--docker-host", "tcp://docker1.example.com:2376", "--context", "prod")
			assert.Equal(t, exitFailure, code)
			assert.Contains(t, stderr, tc.want)
			assert.NoDirExists(t, root)
			assert.NoDirExists(t, cfg)
		})
	}
	// The token still works: the failures did not use it.
	env, _, _ := flLaptopEnv(t)
	_, stderr, code := runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok, "--docker-host", "tcp://docker1.example.com:2376")
	require.Equal(t, 0, code, stderr)

	_, stderr, code = runWithEnv(t, time.Now(), env, "enroll", ca.URL, "not-a-token", "--docker-host", "tcp://x:2376")
	assert.Equal(t, exitUsage, code, stderr)
	_, stderr, code = runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok)
	assert.Equal(t, exitUsage, code, stderr)
	assert.Contains(t, stderr, "docker-host")
}

// TestAgentCommand: 'dtls agent --once' renews a short-lived bundle of the
// store and its docker context; after 'dtls revoke --ca-url' the CA
// refuses the next renewal, and the agent exits 1 saying so.
func TestAgentCommand(t *testing.T) {
	t.Parallel()
	ca := catest.Start(t, catest.Options{ClientValidity: 30 * time.Second})
	env, root, cfg := flLaptopEnv(t)
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"})
	_, stderr, code := runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok, "--docker-host", "tcp://docker1.example.com:2376", "--context", "prod")
	require.Equal(t, 0, code, stderr)
	dir := filepath.Join(root, "docker1.example.com")
	before := string(flRead(t, filepath.Join(dir, "cert.pem")))

	// Not due yet.
	_, stderr, code = runWithEnv(t, time.Now(), env, "agent", "--once", "--jitter=false")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, `"alice" is not due`)
	assert.Equal(t, before, string(flRead(t, filepath.Join(dir, "cert.pem"))))
	// Due: two thirds of its lifetime have passed.
	_, stderr, code = runWithEnv(t, flDue(t, dir), env, "agent", "--once", "--jitter=false")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, `renewed "alice" in `+dir)
	assert.Contains(t, stderr, `refreshed docker context "prod"`)
	after := string(flRead(t, filepath.Join(dir, "cert.pem")))
	assert.NotEqual(t, before, after)
	_, tlsDir := dockercontext.Paths(cfg, "prod")
	assert.Equal(t, after, string(flRead(t, filepath.Join(tlsDir, "docker", "cert.pem"))))
	assert.Equal(t, string(flRead(t, filepath.Join(dir, "key.pem"))), string(flRead(t, filepath.Join(tlsDir, "docker", "key.pem"))))
	assert.ElementsMatch(t, []string{"ca.pem", "cert.pem", "key.pem", "dtls.json"}, flEntries(t, dir))

	// --now: renewed at once, not due.
	_, stderr, code = runWithEnv(t, time.Now(), env, "agent", "--now")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, `renewed "alice" in `+dir+` before its schedule: renewal asked for (--now)`)
	assert.NotEqual(t, after, string(flRead(t, filepath.Join(dir, "cert.pem"))))
	after = string(flRead(t, filepath.Join(dir, "cert.pem")))

	op := flOperatorDir(t, ca)
	_, stderr, code = runWithEnv(t, time.Now(), env, "revoke", "alice", "--ca-url", ca.URL, "--operator", op, "--reason", "keyCompromise")
	require.Equal(t, 0, code, stderr)
	_, stderr, code = runWithEnv(t, flDue(t, dir), env, "agent", "--once")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "refused to renew \"alice\"")
	assert.Contains(t, stderr, "revoked")
	assert.Equal(t, after, string(flRead(t, filepath.Join(dir, "cert.pem"))), "the bundle is kept")
	assert.NotContains(t, flEntries(t, dir), agent.PendingKeyFile)

	// A store with no enrolled bundle: nothing to do is an error.
	env2, _, _ := flLaptopEnv(t)
	_, stderr, code = runWithEnv(t, time.Now(), env2, "agent", "--once")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "was enrolled with an online CA")
}

// TestOperatorCommands: 'dtls certs' and 'dtls revoke' with --ca-url call
// the online CA's operator API with the operator's bundle, and print what
// the local commands print.
func TestOperatorCommands(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	env, _, _ := flLaptopEnv(t)
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "carol", Role: "developer"})
	_, stderr, code := runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok, "--docker-host", "tcp://docker1.example.com:2376")
	require.Equal(t, 0, code, stderr)
	op := flOperatorDir(t, ca)

	out, stderr, code := runWithEnv(t, time.Now(), env, "certs", "--ca-url", ca.URL, "--operator", op)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "inventory of the CA at "+ca.URL)
	assert.Regexp(t, `(?m)^NAME +KIND +SERIAL +EXPIRES +STATUS +CA +ROLE$`, out)
	assert.Regexp(t, `(?m)^carol +client +[0-9a-f]+ +\S+ +valid +current +developer$`, out)
	assert.Regexp(t, `(?m)^dtls catest CA +ca `, out)

	_, stderr, code = runWithEnv(t, time.Now(), map[string]string{"DTLS_CA_OPERATOR": op}, "revoke", "carol", "--ca-url", ca.URL)
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `revoked client "carol" serial [0-9a-f]+ \(unspecified\) at the CA `, stderr)

	out, stderr, code = runWithEnv(t, time.Now(), env, "certs", "--ca-url", ca.URL, "--operator", op, "-o", "json")
	require.Equal(t, 0, code, stderr)
	var entries []listEntry
	require.NoError(t, json.Unmarshal([]byte(out), &entries))
	found := false
	for _, e := range entries {
		if e.Name == "carol" {
			found = true
			assert.Equal(t, "revoked", e.Status)
		}
	}
	assert.True(t, found, out)

	// carol's own bundle is no operator's.
	_, stderr, code = runWithEnv(t, time.Now(), env, "certs", "--ca-url", ca.URL, "--operator", filepath.Join(env[clientenv.EnvHome], "docker1.example.com"))
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "revoked")

	_, stderr, code = runWithEnv(t, time.Now(), env, "certs", "--ca-url", ca.URL)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--ca-url needs --operator DIR")
	_, stderr, code = runWithEnv(t, time.Now(), env, "rotate-ca", "--ca-url", ca.URL)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--ca-url needs --operator DIR")
}

// flHostArgs are init's path flags, all in dir.
func flHostArgs(dir string) []string {
	return []string{"--state-dir", filepath.Join(dir, "state"), "--certs-dir", filepath.Join(dir, "certs"),
		"--daemon-json", filepath.Join(dir, "etc", "daemon.json"), "--systemd-dir", filepath.Join(dir, "systemd")}
}

// TestInitWithOnlineCA: 'dtls init --ca-url --token' enrols the host with
// a server token and sets the daemon up as a local init does, with the
// fleet's CA and no CA key; a CA that is down changes nothing; the CA
// commands refuse on such a host; 'dtls renew --server' renews through the
// CA.
func TestInitWithOnlineCA(t *testing.T) {
	t.Parallel()
	ca := catest.Start(t, catest.Options{})
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "systemd"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	daemonJSON := filepath.Join(dir, "etc", "daemon.json")
	require.NoError(t, os.WriteFile(daemonJSON, []byte(`{"log-level": "warn"}`+"\n"), 0o644))
	state, certs := filepath.Join(dir, "state"), filepath.Join(dir, "certs")
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker1.example.com", Hosts: []string{"127.0.0.1"}})

	// The CA is down: nothing is written, and the token stays usable.
	down := flClosedURL(t)
	_, stderr, code := dtls(t, time.Now(), append([]string{"init", "--ca-url", down, "--token", tok}, flHostArgs(dir)...)...)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "cannot reach the CA at "+down)
	assert.Contains(t, stderr, "nothing was changed")
	assert.NoDirExists(t, state)
	assert.NoDirExists(t, certs)
	assert.Equal(t, `{"log-level": "warn"}`+"\n", string(flRead(t, daemonJSON)))
	assert.Equal(t, []string{"daemon.json"}, flEntries(t, filepath.Join(dir, "etc")))

	_, stderr, code = dtls(t, time.Now(), append([]string{"init", "--ca-url", ca.URL, "--token", tok}, flHostArgs(dir)...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "installed server certificate "+filepath.Join(certs, "server-cert.pem"))
	assert.Contains(t, stderr, "dtls enroll "+ca.URL+" TOKEN --docker-host tcp://docker1.example.com:2376")

	assert.Equal(t, string(ca.CAPEM), string(flRead(t, filepath.Join(certs, "ca.pem"))))
	assert.Equal(t, os.FileMode(0o444), flMode(t, filepath.Join(certs, "ca.pem")))
	assert.Equal(t, os.FileMode(0o444), flMode(t, filepath.Join(certs, "server-cert.pem")))
	assert.Equal(t, os.FileMode(0o400), flMode(t, filepath.Join(certs, "server-key.pem")))
	assert.ElementsMatch(t, []string{"ca.pem", "server-cert.pem", "server-key.pem"}, flEntries(t, certs))
	for _, name := range flEntries(t, state) {
		assert.NotContains(t, name, "ca-key", "no CA key on a fleet host")
		assert.NotContains(t, name, "pending")
	}
	srvCert, err := pki.ParseCertificate(flRead(t, filepath.Join(certs, "server-cert.pem")))
	require.NoError(t, err)
	require.NoError(t, pki.Verify(srvCert, []*x509.Certificate{ca.CACert}, pki.KindServer, time.Now()))
	assert.Empty(t, pki.Missing(srvCert, []string{"docker1.example.com", "127.0.0.1"}))
	key, err := pki.ParsePrivateKey(flRead(t, filepath.Join(certs, "server-key.pem")))
	require.NoError(t, err)
	assert.True(t, pki.KeyMatches(srvCert, key))

	var dj map[string]any
	require.NoError(t, json.Unmarshal(flRead(t, daemonJSON), &dj))
	assert.Equal(t, true, dj["tlsverify"])
	assert.Equal(t, filepath.Join(certs, "ca.pem"), dj["tlscacert"])
	assert.Equal(t, filepath.Join(certs, "server-key.pem"), dj["tlskey"])
	assert.Equal(t, "warn", dj["log-level"])
	srv, err := authority.ReadServer(state)
	require.NoError(t, err)
	assert.Equal(t, ca.URL, srv.CAURL)
	assert.Equal(t, "tcp://docker1.example.com:2376", srv.DockerHost)

	// The local inventory records the server certificate.
	out, stderr, code := dtls(t, time.Now(), "certs", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Regexp(t, `(?m)^docker1\.example\.com +server +`+pki.Serial(srvCert)+` +\S+ +valid`, out)

	// No CA here: issuing refuses, naming the CA.
	_, stderr, code = dtls(t, time.Now(), "issue-client", "bob", "--state-dir", state, "--out", filepath.Join(dir, "bob"))
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "dtls: error: this host enrolled with the CA at "+ca.URL+": issue client certificates there with `dtls ca token --client NAME`")
	assert.NoDirExists(t, filepath.Join(dir, "bob"))

	// init again, without a token: the certificate is kept.
	_, stderr, code = dtls(t, time.Now(), append([]string{"init"}, flHostArgs(dir)...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "kept server certificate")
	assert.Equal(t, pki.Serial(srvCert), flSerialAt(t, filepath.Join(certs, "server-cert.pem")))

	// renew --server goes through the CA: a new key, the old certificate
	// superseded there.
	_, stderr, code = dtls(t, time.Now(), "renew", "--server", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "renewing the server certificate through the CA at "+ca.URL)
	assert.Contains(t, stderr, "restart needed")
	renewed := flSerialAt(t, filepath.Join(certs, "server-cert.pem"))
	assert.NotEqual(t, pki.Serial(srvCert), renewed)
	newKey, err := pki.ParsePrivateKey(flRead(t, filepath.Join(certs, "server-key.pem")))
	require.NoError(t, err)
	assert.False(t, pki.KeyMatches(srvCert, newKey), "a new key")
	assert.Equal(t, os.FileMode(0o400), flMode(t, filepath.Join(certs, "server-key.pem")))
	old, err := ca.Store.Get(pki.Serial(srvCert))
	require.NoError(t, err)
	assert.Equal(t, store.StatusSuperseded, old.Status)
	assert.NoFileExists(t, filepath.Join(state, authority.PendingServerKeyFile))
	out, _, _ = dtls(t, time.Now(), "certs", "--state-dir", state)
	assert.Regexp(t, `(?m)^docker1\.example\.com +server +`+renewed+` +\S+ +valid`, out)
	assert.Regexp(t, `(?m)^docker1\.example\.com +server +`+pki.Serial(srvCert)+` +\S+ +superseded`, out)

	// A used token on a fresh host: refused, nothing written.
	dir2 := t.TempDir()
	_, stderr, code = dtls(t, time.Now(), append([]string{"init", "--ca-url", ca.URL, "--token", tok}, flHostArgs(dir2)...)...)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "refused to enrol this host: enrolment token already used")
	assert.Empty(t, flEntries(t, dir2))
}

// TestRenewServerResumes: a server renewal killed after the CA answered
// (its key saved in the state directory, the old certificate superseded
// at the CA) is finished by the next 'dtls renew --server', with the same
// successor.
func TestRenewServerResumes(t *testing.T) {
	ca := catest.Start(t, catest.Options{})
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "systemd"), 0o755))
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindServer, Name: "docker2.example.com"})
	_, stderr, code := dtls(t, time.Now(), append([]string{"init", "--ca-url", ca.URL, "--token", tok}, flHostArgs(dir)...)...)
	require.Equal(t, 0, code, stderr)
	state, certs := filepath.Join(dir, "state"), filepath.Join(dir, "certs")

	// The killed run: key saved, CA asked, nothing installed.
	csrPEM, keyPEM, err := pki.NewCSR("x", "")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(state, authority.PendingServerKeyFile), keyPEM, 0o600))
	c := flServerClient(t, ca, certs)
	succ, err := c.Renew(t.Context(), csrPEM)
	require.NoError(t, err)

	_, stderr, code = dtls(t, time.Now(), "renew", "--server", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, succ.Certificate, string(flRead(t, filepath.Join(certs, "server-cert.pem"))))
	assert.Equal(t, string(keyPEM), string(flRead(t, filepath.Join(certs, "server-key.pem"))))
	assert.NoFileExists(t, filepath.Join(state, authority.PendingServerKeyFile))
}

func flServerClient(t *testing.T, ca *catest.CA, certs string) *fleet.Client {
	t.Helper()
	pair, err := tls.X509KeyPair(flRead(t, filepath.Join(certs, "server-cert.pem")), flRead(t, filepath.Join(certs, "server-key.pem")))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca.CACert)
	return &fleet.Client{URL: ca.URL, Roots: roots, Certificate: &pair}
}

// flDue is when the certificate of the bundle in dir is due for renewal
// (without jitter).
func flDue(t *testing.T, dir string) time.Time {
	t.Helper()
	c, err := pki.ParseCertificate(flRead(t, filepath.Join(dir, "cert.pem")))
	require.NoError(t, err)
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

func flSerialAt(t *testing.T, p string) string {
	t.Helper()
	c, err := pki.ParseCertificate(flRead(t, p))
	require.NoError(t, err)
	return pki.Serial(c)
}

// TestAgentCommandUnreachable: 'dtls agent --once' with its CA down keeps
// the bundle and exits 0, warning louder once less than a third of the
// lifetime is left; after the expiry it says the certificate expired
// while the CA was unreachable, and exits 1.
func TestAgentCommandUnreachable(t *testing.T) {
	ca := catest.Start(t, catest.Options{ClientValidity: 3 * time.Hour})
	env, root, _ := flLaptopEnv(t)
	tok := ca.Token(t, fleet.TokenRequest{Kind: store.KindClient, Name: "alice", Role: "developer"})
	_, stderr, code := runWithEnv(t, time.Now(), env, "enroll", ca.URL, tok, "--docker-host", "tcp://docker1.example.com:2376")
	require.Equal(t, 0, code, stderr)
	dir := filepath.Join(root, "docker1.example.com")
	b, err := clientenv.LoadBundle(dir)
	require.NoError(t, err)
	down := flClosedURL(t)
	m := b.Meta
	m.CAURL = down
	mj, err := clientenv.MarshalMeta(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, clientenv.MetaFile), mj, 0o644))
	cert, err := pki.ParseCertificate(flRead(t, filepath.Join(dir, "cert.pem")))
	require.NoError(t, err)
	life := cert.NotAfter.Sub(cert.NotBefore)

	// Due (jitter: up to a tenth early), more than a third left.
	_, stderr, code = runWithEnv(t, cert.NotAfter.Add(-life/3-life/20), env, "agent", "--once", "--jitter=false")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, `"alice" is not due`)
	_, stderr, code = runWithEnv(t, cert.NotAfter.Add(-life/3), env, "agent", "--once", "--jitter=false")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "dtls: warning: "+dir+": cannot reach the CA at "+down)
	assert.Contains(t, stderr, "less than a third of its lifetime left: it expires ")
	_, stderr, code = runWithEnv(t, cert.NotAfter.Add(time.Second), env, "agent", "--once")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, stderr, "expired at "+cert.NotAfter.UTC().Format(time.RFC3339)+" while the CA was unreachable (cannot reach the CA at "+down)
	assert.Contains(t, stderr, "enrol again with a new token")
}
