package cmd

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// TestCAInitAndToken: `dtls ca init` makes the state directory with its
// modes, ca.json, the operator bundle (recorded with the operator role)
// and the unit; it refuses to run again without --force. `dtls ca token`
// prints only the token on stdout, for this CA, and the command to run on
// stderr.
func TestCAInitAndToken(t *testing.T) {
	dir := t.TempDir()
	state, units := filepath.Join(dir, "ca"), filepath.Join(dir, "units")
	require.NoError(t, os.Mkdir(units, 0o755))
	now := time.Now()
	out, stderr, code := dtls(t, now, "ca", "init", "--state-dir", state, "--unit-dir", units,
		"--host", "ca.example", "--host", "127.0.0.1", "--listen", "127.0.0.1:8888", "--client-validity", "12h")
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, out)
	assert.Contains(t, stderr, "made the online CA in "+state)
	assert.Contains(t, stderr, "URL for hosts: https://ca.example:8888")

	for name, mode := range map[string]os.FileMode{
		".": 0o700, "ca.pem": 0o644, "ca-key.pem": 0o400, "tls-cert.pem": 0o644, "tls-key.pem": 0o600,
		"ca.json": 0o600, "dtls-ca.db": 0o600, "operator": 0o700, "operator/ca.pem": 0o644,
		"operator/cert.pem": 0o644, "operator/key.pem": 0o600, "operator/dtls.json": 0o644,
	} {
		assert.Equal(t, mode, fileMode(t, filepath.Join(state, name)), name)
	}
	leftovers, err := filepath.Glob(filepath.Join(dir, ".ca.tmp-*"))
	require.NoError(t, err)
	assert.Empty(t, leftovers)
	cfg, err := os.ReadFile(filepath.Join(state, "ca.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"listen":"127.0.0.1:8888","url":"https://ca.example:8888","client_validity":"12h","server_validity":"8760h"}`, string(cfg))
	unit, err := os.ReadFile(filepath.Join(units, "dtls-ca.service"))
	require.NoError(t, err)
	assert.Regexp(t, `\nExecStart=\S+ ca serve --state-dir `+regexp.QuoteMeta(state)+`\n`, string(unit))
	assert.Contains(t, string(unit), "\nReadWritePaths="+state+"\n")
	assert.Equal(t, os.FileMode(0o644), fileMode(t, filepath.Join(units, "dtls-ca.service")))

	b, err := clientenv.LoadBundle(filepath.Join(state, "operator"))
	require.NoError(t, err)
	assert.Equal(t, "https://ca.example:8888", b.Meta.CAURL)
	assert.Equal(t, "ca-operator", b.Meta.Name)
	opPEM, err := os.ReadFile(filepath.Join(state, "operator", "cert.pem"))
	require.NoError(t, err)
	op, err := pki.ParseCertificate(opPEM)
	require.NoError(t, err)
	role, _ := fleet.CertRole(op)
	assert.Equal(t, fleet.OperatorRole, role)
	assert.WithinDuration(t, now.Add(12*time.Hour), op.NotAfter, time.Second)
	caPEM, err := os.ReadFile(filepath.Join(state, "ca.pem"))
	require.NoError(t, err)
	ca, err := pki.ParseCertificate(caPEM)
	require.NoError(t, err)
	require.NoError(t, pki.Verify(op, []*x509.Certificate{ca}, pki.KindClient, now))

	st, err := store.OpenReadOnly(filepath.Join(state, "dtls-ca.db"))
	require.NoError(t, err)
	r, err := st.Role("ca-operator")
	require.NoError(t, err)
	assert.Equal(t, fleet.OperatorRole, r)
	all, err := st.All()
	require.NoError(t, err)
	var kinds []store.Kind
	for _, rec := range all {
		kinds = append(kinds, rec.Kind)
	}
	assert.ElementsMatch(t, []store.Kind{store.KindCA, store.KindServer, store.KindClient}, kinds)
	require.NoError(t, st.Close())

	// Again: refused, nothing changed.
	_, stderr, code = dtls(t, now, "ca", "init", "--state-dir", state, "--unit-dir", units, "--host", "ca.example")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `dtls: error: state directory exists: "`+state+`" (--force makes a new CA in its place)`)
	again, err := os.ReadFile(filepath.Join(state, "ca.pem"))
	require.NoError(t, err)
	assert.Equal(t, caPEM, again)

	// A client token.
	out, stderr, code = dtls(t, now, "ca", "token", "--state-dir", state, "--client", "alice", "--role", "developer")
	require.Equal(t, 0, code, stderr)
	tokLine := strings.TrimSuffix(out, "\n")
	assert.NotContains(t, tokLine, "\n", "stdout is the token alone")
	tok, err := fleet.ParseToken(tokLine)
	require.NoError(t, err)
	assert.True(t, fleet.MatchesFingerprint(ca, tok.CAFingerprint))
	assert.Contains(t, stderr, "one-time token for client alice (role developer), valid until "+now.Add(time.Hour).UTC().Format(time.RFC3339))
	assert.Contains(t, stderr, "\n  dtls enroll https://ca.example:8888 "+tokLine+" --docker-host tcp://DOCKER-HOST:2376\n")

	// A host token.
	out, stderr, code = dtls(t, now, "ca", "token", "--state-dir", state, "--host", "docker1.example", "--san", "10.0.0.7", "--ttl", "10m")
	require.Equal(t, 0, code, stderr)
	hostTok, err := fleet.ParseToken(out)
	require.NoError(t, err)
	assert.Contains(t, stderr, "one-time token for host docker1.example (10.0.0.7), valid until "+now.Add(10*time.Minute).UTC().Format(time.RFC3339))
	assert.Contains(t, stderr, "\n  sudo dtls init --ca-url https://ca.example:8888 --token "+strings.TrimSpace(out)+"\n")
	st, err = store.OpenReadOnly(filepath.Join(state, "dtls-ca.db"))
	require.NoError(t, err)
	defer st.Close()
	rec, err := st.Token(hostTok.Hash())
	require.NoError(t, err)
	assert.Equal(t, []string{"docker1.example", "10.0.0.7"}, rec.Hosts)

	// A host whose names cover the CA's own listener could answer as the
	// CA: refused.
	out, stderr, code = dtls(t, now, "ca", "token", "--state-dir", state, "--host", "web.example", "--san", "*.example")
	assert.NotEqual(t, 0, code)
	assert.Empty(t, out)
	assert.Contains(t, stderr, `cover "ca.example", a name of the CA's own listener`)

	for _, args := range [][]string{
		{"--client", "a", "--host", "b"},
		{},
		{"--host", "b", "--role", "admin"},
		{"--client", "a", "--ttl", "0s"},
	} {
		_, stderr, code := dtls(t, now, append([]string{"ca", "token", "--state-dir", state}, args...)...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
	}
	_, stderr, code = dtls(t, now, "ca", "token", "--state-dir", state, "--client", "../evil")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `invalid client name "../evil"`)

	// --force: a new CA in its place.
	_, stderr, code = dtls(t, now, "ca", "init", "--state-dir", state, "--unit-dir", "", "--host", "ca.example", "--force")
	require.Equal(t, 0, code, stderr)
	again, err = os.ReadFile(filepath.Join(state, "ca.pem"))
	require.NoError(t, err)
	assert.NotEqual(t, caPEM, again)
}

// syncBuffer is a bytes.Buffer for a writer and a reader in two
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCAServe: `dtls ca serve` serves the state directory `dtls ca init`
// made: a token from `dtls ca token` enrols over HTTPS, the request is
// logged to stderr, and SIGTERM stops it with exit code 0.
func TestCAServe(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "ca")
	now := time.Now()
	_, stderr, code := dtls(t, now, "ca", "init", "--state-dir", state, "--unit-dir", "", "--host", "127.0.0.1")
	require.Equal(t, 0, code, stderr)
	tok, stderr, code := dtls(t, now, "ca", "token", "--state-dir", state, "--client", "alice")
	require.Equal(t, 0, code, stderr)

	var out, errOut syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- Run([]string{"ca", "serve", "--state-dir", state, "--listen", "127.0.0.1:0"}, IO{
			In: strings.NewReader(""), Out: &out, ErrOut: &errOut,
			Now: time.Now, Getenv: func(string) string { return "" },
		})
	}()
	serving := regexp.MustCompile(`serving the online CA on (127\.0\.0\.1:\d+)`)
	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" && time.Now().Before(deadline) {
		select {
		case c := <-exit:
			t.Fatalf("serve exited with %d: %s", c, errOut.String())
		default:
		}
		if m := serving.FindStringSubmatch(errOut.String()); m != nil {
			addr = m[1]
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NotEmpty(t, addr, "serve did not start: %s", errOut.String())

	caPEM, err := os.ReadFile(filepath.Join(state, "ca.pem"))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	csr, _, err := pki.NewCSR("alice", "")
	require.NoError(t, err)
	body, err := json.Marshal(fleet.EnrollRequest{Token: strings.TrimSpace(tok), CSR: string(csr)})
	require.NoError(t, err)
	resp, err := client.Post("https://"+addr+fleet.PathEnroll, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	var env struct {
		Success bool               `json:"success"`
		Result  fleet.CertResponse `json:"result"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "alice", env.Result.Name)
	assert.Equal(t, caserver.DefaultClientRole, env.Result.Role)

	// The signal handler is in place: serve printed its line after
	// installing it.
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case c := <-exit:
		assert.Equal(t, 0, c, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	assert.Regexp(t, `level=INFO msg=request remote=127\.0\.0\.1:\d+ method=POST path=/api/v1/dtls/enroll status=200 `, errOut.String())
	assert.Contains(t, errOut.String(), "dtls ca: stopped")
	assert.Empty(t, out.String())
}
