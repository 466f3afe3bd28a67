package authority

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver/cahost"
	"github.com/dtls-tool/dtls/pki"
)

// host is a CA host laid out in a temporary directory.
type host struct {
	root, state, certs, daemonJSON, systemd string
}

func newHost(t testing.TB) *host {
	t.Helper()
	root := t.TempDir()
	h := &host{
		root:       root,
		state:      filepath.Join(root, "state"),
		certs:      filepath.Join(root, "certs"),
		daemonJSON: filepath.Join(root, "etc", "daemon.json"),
		systemd:    filepath.Join(root, "systemd"),
	}
	require.NoError(t, os.MkdirAll(h.systemd, 0o755))
	require.NoError(t, os.MkdirAll(filepath.Dir(h.daemonJSON), 0o755))
	require.NoError(t, os.WriteFile(h.daemonJSON, []byte("{}\n"), 0o644))
	return h
}

func (h *host) request(now time.Time) InitRequest {
	return InitRequest{
		StateDir: h.state, CertsDir: h.certs, DaemonJSON: h.daemonJSON, SystemdDir: h.systemd,
		Hosts: []string{"localhost", "127.0.0.1"}, Listen: DefaultListen, KeyType: pki.ECDSAP256,
		CAValidity: pki.DefaultCAValidity, ServerValidity: pki.DefaultServerValidity,
		CAName: DefaultCAName(now), Now: now,
	}
}

func (h *host) init(t *testing.T, mod func(*InitRequest), o Options) *InitResult {
	t.Helper()
	r := h.request(time.Now())
	if mod != nil {
		mod(&r)
	}
	res, err := Init(r, o)
	require.NoError(t, err)
	return res
}

func (h *host) open(t *testing.T, o Options) *Authority {
	t.Helper()
	a, err := Open(h.state, o)
	require.NoError(t, err)
	t.Cleanup(a.Close)
	return a
}

type fixedPass string

func (p fixedPass) Passphrase(bool) ([]byte, error) { return []byte(p), nil }

// tree maps every file under dir to its mode and content, for "nothing
// changed" checks.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[strings.TrimPrefix(p, dir)] = v
		return nil
	})
	require.NoError(t, err)
	return out
}

// TestInitFailureChangesNothing: a certs directory that cannot be written
// (a file in its way) fails init after the CA was planned; every file is
// put back, no journal stays, and a first init leaves no state directory.
func TestInitFailureChangesNothing(t *testing.T) {
	h := newHost(t)
	require.NoError(t, os.WriteFile(filepath.Join(h.root, "blocker"), []byte("x"), 0o644))
	before := tree(t, h.root)
	r := h.request(time.Now())
	r.CertsDir = filepath.Join(h.root, "blocker", "certs")
	_, err := Init(r, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "blocker")
	assert.Contains(t, err.Error(), "nothing was changed")
	assert.Equal(t, before, tree(t, h.root), "a failed first init left files behind")

	// On an initialised host: the same failure keeps everything as it was.
	h.init(t, nil, Options{})
	before = tree(t, h.root)
	r = h.request(time.Now())
	r.Force = true
	r.CertsDir = filepath.Join(h.root, "blocker", "certs")
	_, err = Init(r, Options{})
	require.Error(t, err)
	after := tree(t, h.root)
	// The lock file records the last holder's pid; the inventory's files
	// are compared through the records.
	for _, m := range []map[string]string{before, after} {
		for k := range m {
			if strings.HasPrefix(filepath.Base(k), DBFile) || filepath.Base(k) == LockFile {
				delete(m, k)
			}
		}
	}
	assert.Equal(t, before, after)
	j, _ := filepath.Glob(filepath.Join(h.state, JournalDir, "*"))
	assert.Empty(t, j, "journal left behind")
}

// TestDirectoriesNeverLoosened: an existing certs directory keeps its
// mode; a new one is 0755. One that others can write, a sticky 1777 one
// too, is refused as root: another account could swap a link in under
// init's checks (found by a red team).
func TestDirectoriesNeverLoosened(t *testing.T) {
	for _, mode := range []fs.FileMode{0o700, 0o1777 | fs.ModeSticky} {
		h := newHost(t)
		require.NoError(t, os.Mkdir(h.certs, 0o700))
		require.NoError(t, os.Chmod(h.certs, mode))
		if mode&0o022 != 0 && os.Geteuid() == 0 {
			_, err := Init(h.request(time.Now()), Options{})
			assert.ErrorContains(t, err, "is writable by group or others")
			continue
		}
		h.init(t, nil, Options{})
		h.init(t, func(r *InitRequest) { r.Force = true }, Options{})
		fi, err := os.Stat(h.certs)
		require.NoError(t, err)
		assert.Equal(t, mode&(fs.ModePerm|fs.ModeSticky), fi.Mode()&(fs.ModePerm|fs.ModeSticky), "certs dir mode changed")
	}
	h := newHost(t)
	h.init(t, nil, Options{})
	fi, err := os.Stat(h.certs)
	require.NoError(t, err)
	assert.Equal(t, CertsDirMode, fi.Mode().Perm())
	fi, err = os.Stat(h.state)
	require.NoError(t, err)
	assert.Equal(t, DirMode, fi.Mode().Perm())
}

// TestEncryptionStaysOn: once a CA key is encrypted, init --force and
// rotate-ca write encrypted keys, and init --encrypt-ca-key during a
// rotation encrypts the kept CA's key too.
func TestEncryptionStaysOn(t *testing.T) {
	encrypted := func(t *testing.T, p string) bool {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		return pki.IsEncryptedKey(b)
	}
	h := newHost(t)
	o := Options{Passphrase: fixedPass("s3cret")}
	h.init(t, func(r *InitRequest) { r.EncryptCAKey = true }, o)
	require.True(t, encrypted(t, filepath.Join(h.state, CAKeyFile)))
	h.init(t, func(r *InitRequest) { r.Force = true }, o)
	assert.True(t, encrypted(t, filepath.Join(h.state, CAKeyFile)), "init --force wrote the new CA key in the clear")
	_, err := Init(h.request(time.Now()), Options{})
	assert.ErrorIs(t, err, ErrNoPassphrase, "signing stopped asking for the passphrase")

	a := h.open(t, o)
	_, err = a.Rotate(RotateRequest{KeyType: pki.ECDSAP256, Validity: pki.DefaultCAValidity, CAName: "rotated", Now: time.Now()})
	require.NoError(t, err)
	a.Close()
	assert.True(t, encrypted(t, filepath.Join(h.state, CAKeyFile)))
	assert.True(t, encrypted(t, filepath.Join(h.state, OldCAKeyFile)))

	// A plain CA in rotation, then --encrypt-ca-key: both keys.
	h = newHost(t)
	h.init(t, nil, Options{})
	a = h.open(t, Options{})
	_, err = a.Rotate(RotateRequest{KeyType: pki.ECDSAP256, Validity: pki.DefaultCAValidity, CAName: "rotated", Now: time.Now()})
	require.NoError(t, err)
	a.Close()
	h.init(t, func(r *InitRequest) { r.EncryptCAKey = true }, o)
	assert.True(t, encrypted(t, filepath.Join(h.state, CAKeyFile)))
	assert.True(t, encrypted(t, filepath.Join(h.state, OldCAKeyFile)), "the kept CA's key stayed in the clear")
	a = h.open(t, o)
	_, err = a.OldCA()
	assert.NoError(t, err)
}

// TestBundleTargets: an overlap hidden behind a symbolic link is refused,
// and so is --force onto another holder's bundle.
func TestBundleTargets(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(h.root, link))
	a := h.open(t, Options{})
	err := a.CheckBundleTarget(filepath.Join(link, "certs"), "x", true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "overlaps")
	err = a.CheckBundleTarget(filepath.Join(link, "state", "sub"), "x", true)
	require.Error(t, err)

	out := t.TempDir()
	dir := func(n string) string { return filepath.Join(out, n) }
	_, err = a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: dir, DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	before := tree(t, out)
	_, err = a.IssueClients(ClientRequest{Names: []string{"bob"}, Dir: func(string) string { return dir("alice") }, DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Force: true, Now: time.Now()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `holds the bundle of "alice", not of "bob"`)
	assert.Equal(t, before, tree(t, out))
	// Her own bundle can be replaced.
	_, err = a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: dir, DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Force: true, Now: time.Now()})
	require.NoError(t, err)
}

// TestTempFilesRemoved: what a killed run leaves (a temporary copy of the
// CA key, a half-written journal) is removed by the next Open.
func TestTempFilesRemoved(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	require.NoError(t, os.MkdirAll(filepath.Join(h.state, JournalDir), 0o700))
	tmps := []string{
		filepath.Join(h.state, ".ca-key.pem.tmp-123"),
		filepath.Join(h.state, JournalDir, ".init-00.json.tmp-456"),
	}
	for _, p := range tmps {
		require.NoError(t, os.WriteFile(p, []byte("secret"), 0o600))
	}
	h.open(t, Options{})
	for _, p := range tmps {
		assert.NoFileExists(t, p)
	}
}

// TestLockWait: a second run waits for the lock, says so after a moment,
// and gives up with a clear error after the timeout.
func TestLockWait(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	first := h.open(t, Options{})
	var waited string
	_, err := Open(h.state, Options{LockTimeout: 300 * time.Millisecond, OnLockWait: func(_, holder string, _ time.Duration) { waited = holder }})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gave up after 300ms waiting for the lock")
	assert.Equal(t, pidString(), waited, "the wait did not name the holder")
	first.Close()
	second, err := Open(h.state, Options{LockTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	second.Close()
}

// TestRevokeWritesCRLInOneChange: the record and the CRL go together, and
// revoking again is refused as already revoked.
func TestRevokeWritesCRLInOneChange(t *testing.T) {
	h := newHost(t)
	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	out := t.TempDir()
	_, err := a.IssueClients(ClientRequest{Names: []string{"bob"}, Dir: func(n string) string { return filepath.Join(out, n) }, DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(t, err)
	res, err := a.Revoke("bob", 1, time.Now())
	require.NoError(t, err)
	require.Len(t, res.Revoked, 1)
	crl, err := os.ReadFile(filepath.Join(h.state, CRLFile))
	require.NoError(t, err)
	ca, err := a.CA()
	require.NoError(t, err)
	list, err := fixture.ParseCRL(crl)
	require.NoError(t, err)
	require.NoError(t, list.CheckSignatureFrom(ca.Cert))
	require.Len(t, list.RevokedCertificateEntries, 1)
	assert.Equal(t, res.Revoked[0].Serial, list.RevokedCertificateEntries[0].SerialNumber.Text(16))
	_, err = a.Revoke("bob", 1, time.Now())
	assert.True(t, errors.Is(err, ErrAlreadyRevoked), "%v", err)
	r, err := a.Store.Get(res.Revoked[0].Serial)
	require.NoError(t, err)
	assert.Equal(t, store.StatusRevoked, r.Status)
}

func pidString() string { return strconv.Itoa(os.Getpid()) }

// TestInitAuthzWaitsForThePlugin: init --authz writes the plugin's units
// and the docker.service drop-in, but names the plugin in daemon.json only
// once it answers: dockerd would refuse to start otherwise.
func TestInitAuthzWaitsForThePlugin(t *testing.T) {
	h := newHost(t)
	sock := filepath.Join(t.TempDir(), "dtls-authz.sock")
	res := h.init(t, func(r *InitRequest) {
		r.Authz, r.AuthzSocket, r.AuthzExe, r.AuthzLog = true, sock, "/usr/local/bin/dtls", "/var/log/dtls/authz.log"
	}, Options{})
	assert.True(t, res.AuthzPending)
	for _, f := range []string{AuthzSocketUnit, AuthzServiceUnit, filepath.Join("docker.service.d", AuthzDockerDropIn)} {
		assert.FileExists(t, filepath.Join(h.systemd, f))
	}
	b, err := os.ReadFile(h.daemonJSON)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "authorization-plugins", "daemon.json names a plugin that does not answer")
	unit, err := os.ReadFile(filepath.Join(h.systemd, AuthzSocketUnit))
	require.NoError(t, err)
	assert.Contains(t, string(unit), "ListenStream="+sock)
	svc, err := os.ReadFile(filepath.Join(h.systemd, AuthzServiceUnit))
	require.NoError(t, err)
	assert.Contains(t, string(svc), "LogsDirectory=dtls\n", "the log directory must exist before the service starts")
	assert.Contains(t, string(svc), " --daemon-json "+h.daemonJSON+"\n", "the plugin checks the daemon.json init wrote")
}

// TestOpenRefusesOnlineCAStateDir: an online CA's state directory (it has
// cahost's ca.json) is refused before anything is written to it.
func TestOpenRefusesOnlineCAStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, cahost.ConfigFile), []byte("{}\n"), 0o600))
	create := func(dir string, o Options) (*Authority, error) {
		a, _, err := create(dir, o)
		return a, err
	}
	for _, open := range []func(string, Options) (*Authority, error){Open, create} {
		a, err := open(dir, Options{})
		require.Error(t, err)
		assert.Nil(t, a)
		assert.ErrorIs(t, err, ErrOnlineCA)
		assert.EqualError(t, err, `"`+dir+`" is an online CA's state directory (it has ca.json): local commands would give it a second inventory the CA does not know`)
		var e *Error
		require.ErrorAs(t, err, &e)
		assert.Contains(t, e.Hint, "--operator "+filepath.Join(dir, cahost.OperatorDir))
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "nothing but ca.json")
	}
	assert.Equal(t, cahost.ConfigFile, OnlineCAConfigFile)
	assert.Equal(t, cahost.OperatorDir, OnlineCAOperatorDir)
}

// TestBundleTargetsOthersCannotChange: no bundle is written, replaced or
// removed under a directory another account could change (a second red
// team round: a holder swapped a directory on the way for a link, and
// root's renewal replaced a root directory of the bundle's name), nor
// through another account's link in a sticky directory (a third).
func TestBundleTargetsOthersCannotChange(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root")
		}
		t.Skip("as root only: directories change owner")
	}
	h := newHost(t)
	h.init(t, nil, Options{})
	a := h.open(t, Options{})
	home := filepath.Join(t.TempDir(), "home")
	require.NoError(t, os.Mkdir(home, 0o755))
	require.NoError(t, os.Chown(home, 65534, 65534))
	err := a.CheckBundleTarget(filepath.Join(home, ".docker", "dtls", "prod"), "alice", true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), home+" is not root's (uid 65534)")
	_, err = a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: func(string) string { return filepath.Join(home, "alice") },
		DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Now: time.Now()})
	assert.ErrorContains(t, err, "is not root's")
	entries, err := os.ReadDir(home)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written there")

	sticky := filepath.Join(t.TempDir(), "tmp")
	require.NoError(t, os.Mkdir(sticky, 0o755))
	require.NoError(t, os.Chmod(sticky, os.ModeSticky|0o777))
	rootDir := t.TempDir()
	link := filepath.Join(sticky, "out")
	require.NoError(t, os.Symlink(rootDir, link))
	require.NoError(t, os.Lchown(link, 65534, 65534))
	assert.ErrorContains(t, a.CheckBundleTarget(filepath.Join(link, "bob"), "bob", true), link+" is not root's (uid 65534)")
	assert.NoError(t, a.CheckBundleTarget(filepath.Join(rootDir, "bob"), "bob", true), "root's own directory")
}
