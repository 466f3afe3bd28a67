package dockercontext

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pair is a certificate and its key, in PEM.
type pair struct{ cert, key []byte }

func newPair(t testing.TB, cn string) pair {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(mrand.Int64N(1 << 62)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	return pair{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
}

// refreshLoop, run in a child process (TestRefreshKilledLeavesAMatchingPair),
// refreshes the contexts made from a bundle with two identities in turn,
// forever, as a renewed bundle's import, enrolment or agent does.
func refreshLoop(cfg, bundleDir string) error {
	var ids [2]pair
	for i := range ids {
		b, err := os.ReadFile(filepath.Join(bundleDir, fmt.Sprintf("id%d", i)))
		if err != nil {
			return err
		}
		cert, key, _ := strings.Cut(string(b), "\x00")
		ids[i] = pair{[]byte(cert), []byte(key)}
	}
	for n := 0; ; n++ {
		id := ids[n%2]
		if _, err := Refresh(cfg, Source{Dir: bundleDir, Host: "tcp://h:2376", CA: []byte("ca"), Cert: id.cert, Key: id.key}); err != nil {
			return err
		}
		if n == 0 {
			fmt.Println("ready")
		}
	}
}

// TestRefreshKilledLeavesAMatchingPair: a refresh of a bundle's Docker
// contexts killed (SIGKILL) at any instant leaves each context with a
// cert.pem and key.pem of one identity, never a new certificate beside the
// old key, which the Docker CLI would fail with. A child process refreshes
// in a loop with two identities in turn and is killed at a random instant;
// the pair on disk must match, and the next refresh removes what the
// killed one left. Writing ca.pem, cert.pem and key.pem one by one (what
// import did) leaves a mismatched pair in about a third of the kills.
func TestRefreshKilledLeavesAMatchingPair(t *testing.T) {
	if cfg := os.Getenv("DTLS_TEST_REFRESH_LOOP"); cfg != "" {
		dir, _ := os.LookupEnv("DTLS_TEST_REFRESH_BUNDLE")
		if err := refreshLoop(cfg, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		return
	}
	root := t.TempDir()
	cfg, bundleDir := filepath.Join(root, "docker"), filepath.Join(root, "bundle")
	require.NoError(t, os.Mkdir(bundleDir, 0o700))
	for i := range 2 {
		p := newPair(t, fmt.Sprintf("id%d", i))
		require.NoError(t, os.WriteFile(filepath.Join(bundleDir, fmt.Sprintf("id%d", i)), append(append(p.cert, 0), p.key...), 0o600))
	}
	c := Context{Name: "prod", Description: "dtls bundle for tcp://h:2376", Host: "tcp://h:2376", Bundle: Resolved(bundleDir)}
	first := newPair(t, "first")
	c.CA, c.Cert, c.Key = []byte("ca"), first.cert, first.key
	require.NoError(t, Create(cfg, c, false))
	_, tlsDir := Paths(cfg, "prod")

	const kills = 100
	for i := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRefreshKilledLeavesAMatchingPair$", "-test.count=1")
		cmd.Env = append(os.Environ(), "DTLS_TEST_REFRESH_LOOP="+cfg, "DTLS_TEST_REFRESH_BUNDLE="+bundleDir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err, "the refresh loop did not start")
		require.Equal(t, "ready\n", line)
		// The kill's instant is random, up to a few refreshes in.
		time.Sleep(time.Duration(mrand.Int64N(int64(5 * time.Millisecond))))
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		cert, cerr := os.ReadFile(filepath.Join(tlsDir, "docker", "cert.pem"))
		key, kerr := os.ReadFile(filepath.Join(tlsDir, "docker", "key.pem"))
		require.NoError(t, cerr, "kill %d: cert.pem", i)
		require.NoError(t, kerr, "kill %d: key.pem", i)
		_, err = tls.X509KeyPair(cert, key)
		require.NoError(t, err, "kill %d: the context holds a cert.pem and a key.pem that do not match", i)
	}

	// The next refresh brings the context up to date and removes what
	// the killed runs left (a temporary directory may hold a key).
	last := newPair(t, "last")
	names, err := Refresh(cfg, Source{Dir: bundleDir, Host: "tcp://h:2376", CA: []byte("ca"), Cert: last.cert, Key: last.key})
	require.NoError(t, err)
	assert.Equal(t, []string{"prod"}, names)
	b, err := os.ReadFile(filepath.Join(tlsDir, "docker", "key.pem"))
	require.NoError(t, err)
	assert.Equal(t, string(last.key), string(b))
	left, err := filepath.Glob(filepath.Join(filepath.Dir(tlsDir), ".*"))
	require.NoError(t, err)
	assert.Empty(t, left, "what the killed refreshes left")
}
