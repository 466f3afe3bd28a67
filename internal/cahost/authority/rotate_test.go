package authority

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/pki"
)

// rotation is a CA host with clients alice and bob and a fleet daemon
// srv2 (issue-server), where the rotation tests start.
type rotation struct {
	*host
	a       *Authority
	bundles string
	now     time.Time
}

func newRotation(t *testing.T, kt pki.KeyType) *rotation {
	t.Helper()
	h := newHost(t)
	h.init(t, func(r *InitRequest) { r.KeyType = kt }, Options{})
	r := &rotation{host: h, a: h.open(t, Options{}), bundles: t.TempDir(), now: time.Now()}
	r.issue(t, "alice", "bob")
	_, err := r.a.IssueServerBundle(ServerBundleRequest{Name: "srv2", Hosts: []string{"srv2"}, Dir: r.dir("srv2"), KeyType: pki.ECDSAP256, Now: r.now})
	require.NoError(t, err)
	return r
}

func (r *rotation) dir(name string) string { return filepath.Join(r.bundles, name) }

func (r *rotation) issue(t *testing.T, names ...string) {
	t.Helper()
	_, err := r.a.IssueClients(ClientRequest{Names: names, Dir: r.dir, DockerHost: "tcp://localhost:2376", KeyType: pki.ECDSAP256, Now: r.now})
	require.NoError(t, err)
}

func (r *rotation) renew(t *testing.T, req RenewRequest) {
	t.Helper()
	req.Now = r.now
	_, err := r.a.Renew(req)
	require.NoError(t, err)
}

func (r *rotation) rotate(t *testing.T, kt pki.KeyType) *RotateResult {
	t.Helper()
	res, err := r.a.Rotate(RotateRequest{KeyType: kt, Validity: pki.DefaultCAValidity, CAName: DefaultCAName(r.now), Now: r.now})
	require.NoError(t, err)
	return res
}

// reinit runs 'dtls init' again: the authority's lock is released for it.
func (r *rotation) reinit(t *testing.T) *InitResult {
	t.Helper()
	r.a.Close()
	res := r.host.init(t, nil, Options{})
	r.a = r.open(t, Options{})
	return res
}

func certsOf(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	cs, err := pki.ParseCertificates(b)
	require.NoError(t, err)
	return cs
}

func certOf(t *testing.T, path string) *x509.Certificate { return certsOf(t, path)[0] }

func serials(cs []*x509.Certificate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = pki.Serial(c)
	}
	return out
}

func names(recs []store.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Name
	}
	return out
}

// signedBy reports whether c is signed by ca.
func signedBy(c, ca *x509.Certificate) bool { return c.CheckSignatureFrom(ca) == nil }

// files is tree without the inventory's files (compared through the
// records) and the lock (it names its holder).
func files(t *testing.T, dir string) map[string]string {
	m := tree(t, dir)
	for k := range m {
		if strings.HasPrefix(filepath.Base(k), DBFile) || filepath.Base(k) == LockFile {
			delete(m, k)
		}
	}
	return m
}

// TestRotationSteps walks a rotation through its three steps: no bundle,
// wherever it was copied, fails to verify the daemon before --switch, and
// --switch waits for the last client of the old CA.
func TestRotationSteps(t *testing.T) {
	r := newRotation(t, pki.ECDSAP256)
	daemonCA := filepath.Join(r.certs, CACertFile)
	serverPath := filepath.Join(r.certs, ServerCertFile)
	oldCA := certOf(t, filepath.Join(r.state, CACertFile))
	serverBefore, err := os.ReadFile(serverPath)
	require.NoError(t, err)
	// What alice imported on her laptop before the rotation: only the old CA.
	laptop := certsOf(t, filepath.Join(r.dir("alice"), CACertFile))
	require.Equal(t, NotRotating, r.a.RotationStep())

	// Step 1.
	res := r.rotate(t, "")
	assert.Equal(t, StepTrust, r.a.RotationStep())
	newCA := res.CA.Cert
	assert.NotEqual(t, oldCA.Subject.CommonName, newCA.Subject.CommonName, "two CAs must be told apart by name")
	assert.Equal(t, serials([]*x509.Certificate{newCA, oldCA}), serials(certsOf(t, daemonCA)), "the daemon trusts both CAs")
	after, err := os.ReadFile(serverPath)
	require.NoError(t, err)
	assert.Equal(t, serverBefore, after, "step 1 re-issued the server certificate")
	assert.NoError(t, pki.Verify(certOf(t, serverPath), laptop, pki.KindServer, r.now), "a laptop's bundle no longer verifies the daemon")
	assert.Equal(t, 2, res.BundlesUpdated)
	assert.Equal(t, 2, res.BundlesTotal)
	for _, b := range []string{"alice", "bob", "srv2"} {
		assert.Equal(t, serials([]*x509.Certificate{newCA, oldCA}), serials(certsOf(t, filepath.Join(r.dir(b), CACertFile))), b)
	}
	assert.True(t, signedBy(certOf(t, filepath.Join(r.dir("srv2"), ServerCertFile)), oldCA))
	require.Len(t, res.Fleet, 1)
	assert.Equal(t, FleetDaemon{Record: res.Fleet[0].Record, OldCA: true, Bundle: true, TrustsNew: true}, res.Fleet[0])

	// During step 1 clients are of the new CA and trust both; server
	// certificates, renewed or new, stay of the old CA; init keeps it.
	r.issue(t, "carol")
	carol := certOf(t, filepath.Join(r.dir("carol"), ClientCertFile))
	assert.True(t, signedBy(carol, newCA))
	assert.NoError(t, pki.Verify(certOf(t, serverPath), certsOf(t, filepath.Join(r.dir("carol"), CACertFile)), pki.KindServer, r.now))
	r.renew(t, RenewRequest{Name: "alice"})
	assert.True(t, signedBy(certOf(t, filepath.Join(r.dir("alice"), ClientCertFile)), newCA))
	r.renew(t, RenewRequest{Server: true})
	assert.True(t, signedBy(certOf(t, serverPath), oldCA), "renew --server at step 1 switched the daemon to the new CA")
	_, err = r.a.IssueServerBundle(ServerBundleRequest{Name: "srv3", Hosts: []string{"srv3"}, Dir: r.dir("srv3"), KeyType: pki.ECDSAP256, Now: r.now})
	require.NoError(t, err)
	assert.True(t, signedBy(certOf(t, filepath.Join(r.dir("srv3"), ServerCertFile)), oldCA))
	assert.Equal(t, serials([]*x509.Certificate{newCA, oldCA}), serials(certsOf(t, filepath.Join(r.dir("srv3"), CACertFile))))
	kept := pki.Serial(certOf(t, serverPath))
	r.reinit(t)
	assert.Equal(t, kept, pki.Serial(certOf(t, serverPath)), "init at step 1 re-issued the server certificate")
	assert.Equal(t, StepTrust, r.a.RotationStep())

	// Step 2: refused while bob holds a bundle of the old CA only.
	before := files(t, r.root)
	_, err = r.a.SwitchServer(false, r.now)
	var blocking *SwitchBlockingError
	require.ErrorAs(t, err, &blocking)
	assert.Equal(t, []string{"bob"}, names(blocking.Left))
	assert.EqualError(t, err, "cannot switch the daemon to the new CA: 1 client of the old CA would not verify it (bundles issued before 'dtls rotate-ca' trust only the old CA)")
	assert.Equal(t, before, files(t, r.root), "a refused --switch changed files")
	r.renew(t, RenewRequest{Name: "bob"})
	sw, err := r.a.SwitchServer(false, r.now)
	require.NoError(t, err)
	assert.Empty(t, sw.Cut)
	assert.Equal(t, StepSwitched, r.a.RotationStep())
	server := certOf(t, serverPath)
	assert.True(t, signedBy(server, newCA))
	assert.Equal(t, kept, sw.Server.Supersedes)
	rec, err := r.a.Store.Get(kept)
	require.NoError(t, err)
	assert.Equal(t, store.StatusSuperseded, rec.Status)
	for _, b := range []string{"alice", "bob", "carol"} {
		assert.NoError(t, pki.Verify(server, certsOf(t, filepath.Join(r.dir(b), CACertFile)), pki.KindServer, r.now), b)
	}
	assert.Equal(t, serials([]*x509.Certificate{newCA, oldCA}), serials(certsOf(t, daemonCA)), "the daemon still trusts both CAs")
	require.Len(t, sw.Fleet, 2)
	for _, f := range sw.Fleet {
		assert.True(t, f.OldCA, f.Record.Name)
	}

	// Step 3: refused while srv2 and srv3 are of the old CA.
	_, err = r.a.FinishRotation(false, r.now)
	var left *BlockingError
	require.ErrorAs(t, err, &left)
	assert.ElementsMatch(t, []string{"srv2", "srv3"}, names(left.Left))
	assert.EqualError(t, err, "2 certificates still chain to the old CA")
	r.renew(t, RenewRequest{Name: "srv2"})
	r.renew(t, RenewRequest{Name: "srv3"})
	assert.True(t, signedBy(certOf(t, filepath.Join(r.dir("srv2"), ServerCertFile)), newCA))
	fin, err := r.a.FinishRotation(false, r.now)
	require.NoError(t, err)
	assert.Empty(t, fin.Cut)
	assert.Equal(t, pki.Serial(oldCA), fin.OldSerial)
	assert.Equal(t, NotRotating, r.a.RotationStep())
	assert.Equal(t, serials([]*x509.Certificate{newCA}), serials(certsOf(t, daemonCA)))
	assert.NoFileExists(t, filepath.Join(r.state, OldCACertFile))
	assert.NoFileExists(t, filepath.Join(r.state, OldCAKeyFile))
	require.Len(t, fin.Fleet, 2)
	for _, f := range fin.Fleet {
		assert.False(t, f.OldCA, f.Record.Name)
	}
}

// TestRotationRefusals: each step refused where it does not apply, with
// its message, and nothing changed.
func TestRotationRefusals(t *testing.T) {
	type call func(r *rotation) error
	rotate := func(r *rotation) error {
		_, err := r.a.Rotate(RotateRequest{Validity: pki.DefaultCAValidity, CAName: "x", Now: r.now})
		return err
	}
	switchCA := func(force bool) call {
		return func(r *rotation) error { _, err := r.a.SwitchServer(force, r.now); return err }
	}
	finish := func(force bool) call {
		return func(r *rotation) error { _, err := r.a.FinishRotation(force, r.now); return err }
	}
	for _, tc := range []struct {
		name     string
		prepare  []call
		call     call
		is       error
		want     string
		wantHint string
	}{
		{"switch outside a rotation", nil, switchCA(true), ErrNoRotation,
			"no CA rotation in progress: nothing to switch", "start one with 'dtls rotate-ca'"},
		{"finish outside a rotation", nil, finish(true), ErrNoRotation,
			"no CA rotation in progress: nothing to finish", "start one with 'dtls rotate-ca'"},
		{"rotate at step 1", []call{rotate}, rotate, ErrRotationInProgress,
			"a CA rotation is already in progress", "it is at step 1 of 3; next: dtls rotate-ca --switch (see 'dtls rotate-ca --status')"},
		{"finish at step 1", []call{rotate}, finish(false), ErrNotSwitched,
			"cannot drop the old CA yet: the daemon still presents a server certificate of the old CA",
			"switch it first: dtls rotate-ca --switch (see 'dtls rotate-ca --status')"},
		{"finish --force at step 1", []call{rotate}, finish(true), ErrNotSwitched,
			"cannot drop the old CA yet: the daemon still presents a server certificate of the old CA",
			"switch it first: dtls rotate-ca --switch (see 'dtls rotate-ca --status')"},
		{"switch at step 1 with clients of the old CA", []call{rotate}, switchCA(false), nil,
			"cannot switch the daemon to the new CA: 2 clients of the old CA would not verify it (bundles issued before 'dtls rotate-ca' trust only the old CA)",
			"give each a renewed bundle ('dtls renew NAME --archive FILE', then 'dtls import FILE' on their machine), or pass --force to switch anyway"},
		{"rotate at step 2", []call{rotate, switchCA(true)}, rotate, ErrRotationInProgress,
			"a CA rotation is already in progress", "it is at step 2 of 3; next: dtls rotate-ca --finish (see 'dtls rotate-ca --status')"},
		{"switch at step 2", []call{rotate, switchCA(true)}, switchCA(true), ErrAlreadySwitched,
			"nothing to switch: the daemon already presents a server certificate of the new CA", "next: dtls rotate-ca --finish"},
		{"finish at step 2 with clients of the old CA", []call{rotate, switchCA(true)}, finish(false), nil,
			"3 certificates still chain to the old CA",
			"renew them ('dtls renew NAME', 'dtls renew --expiring 10000d'), or pass --force to cut them off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRotation(t, pki.ECDSAP256)
			for _, p := range tc.prepare {
				require.NoError(t, p(r))
			}
			step := r.a.RotationStep()
			before := files(t, r.root)
			err := tc.call(r)
			require.Error(t, err)
			assert.EqualError(t, err, tc.want)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			var h *Error
			require.True(t, errors.As(err, &h), "no hint")
			assert.Equal(t, tc.wantHint, h.HintText())
			assert.Equal(t, before, files(t, r.root), "a refusal changed files")
			assert.Equal(t, step, r.a.RotationStep())
		})
	}
}

// TestSwitchForce: with --force, the clients of the old CA are named, and
// their bundles (as copied to a laptop before the rotation) fail to verify
// the daemon with the error the refusal warned of.
func TestSwitchForce(t *testing.T) {
	r := newRotation(t, pki.ECDSAP256)
	laptop := certsOf(t, filepath.Join(r.dir("bob"), CACertFile))
	r.rotate(t, "")
	sw, err := r.a.SwitchServer(true, r.now)
	require.NoError(t, err)
	assert.Equal(t, []string{"alice", "bob"}, names(sw.Cut))
	err = pki.Verify(certOf(t, filepath.Join(r.certs, ServerCertFile)), laptop, pki.KindServer, r.now)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "x509: certificate signed by unknown authority")
	// The records are left as they are: the daemon still accepts those
	// clients' certificates until --finish.
	for _, c := range sw.Cut {
		rec, err := r.a.Store.Get(c.Serial)
		require.NoError(t, err)
		assert.Equal(t, store.StatusGood, rec.Status, c.Name)
	}
}

// TestRotateKeyType: the new CA keeps the current CA's key type (an RSA
// CA stays RSA) unless one is asked for.
func TestRotateKeyType(t *testing.T) {
	for _, tc := range []struct {
		name      string
		current   pki.KeyType
		requested pki.KeyType
		want      pki.KeyType
	}{
		{"RSA kept", pki.RSA2048, "", pki.RSA2048},
		{"Ed25519 kept", pki.Ed25519, "", pki.Ed25519},
		{"P-384 kept", pki.ECDSAP384, "", pki.ECDSAP384},
		{"asked for", pki.RSA2048, pki.ECDSAP256, pki.ECDSAP256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRotation(t, tc.current)
			require.Equal(t, tc.current, pki.KeyTypeOf(certOf(t, filepath.Join(r.state, CACertFile))))
			res := r.rotate(t, tc.requested)
			assert.Equal(t, tc.want, pki.KeyTypeOf(res.CA.Cert))
			assert.Equal(t, tc.want, pki.KeyTypeOf(certOf(t, filepath.Join(r.state, CACertFile))))
			assert.Equal(t, tc.current, pki.KeyTypeOf(certOf(t, filepath.Join(r.state, OldCACertFile))))
		})
	}
}

// TestRotationStatus: the step, who holds up the next one, and the fleet
// daemons, as the rotation goes on.
func TestRotationStatus(t *testing.T) {
	r := newRotation(t, pki.ECDSAP256)
	for _, tc := range []struct {
		name     string
		do       func(t *testing.T)
		step     RotationStep
		blocking []string
		fleet    FleetDaemon // Record left out
		oldCA    bool        // server certificate of the old CA
	}{
		{"before", func(*testing.T) {}, NotRotating, nil, FleetDaemon{}, false},
		{"step 1", func(t *testing.T) { r.rotate(t, "") }, StepTrust, []string{"alice", "bob"},
			FleetDaemon{OldCA: true, Bundle: true, TrustsNew: true}, true},
		{"alice renewed", func(t *testing.T) { r.renew(t, RenewRequest{Name: "alice"}) }, StepTrust, []string{"bob"},
			FleetDaemon{OldCA: true, Bundle: true, TrustsNew: true}, true},
		{"srv2's bundle moved away", func(t *testing.T) {
			require.NoError(t, os.Rename(r.dir("srv2"), r.dir("srv2.moved")))
		}, StepTrust, []string{"bob"}, FleetDaemon{OldCA: true}, true},
		{"step 2", func(t *testing.T) {
			require.NoError(t, os.Rename(r.dir("srv2.moved"), r.dir("srv2")))
			_, err := r.a.SwitchServer(true, r.now)
			require.NoError(t, err)
		}, StepSwitched, []string{"bob", "srv2"}, FleetDaemon{OldCA: true, Bundle: true, TrustsNew: true}, false},
		{"srv2 renewed", func(t *testing.T) { r.renew(t, RenewRequest{Name: "srv2"}) }, StepSwitched, []string{"bob"},
			FleetDaemon{Bundle: true, TrustsNew: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.do(t)
			st, err := r.a.RotationStatus(r.now)
			require.NoError(t, err)
			assert.Equal(t, tc.step, st.Step)
			assert.ElementsMatch(t, tc.blocking, names(st.Blocking))
			assert.Equal(t, filepath.Join(r.certs, ServerCertFile), st.ServerPath)
			require.NotNil(t, st.Server)
			if tc.step == NotRotating {
				assert.Nil(t, st.OldCA)
				assert.Empty(t, st.Fleet)
				return
			}
			require.NotNil(t, st.OldCA)
			assert.Equal(t, tc.oldCA, signedBy(st.Server, st.OldCA))
			assert.Equal(t, !tc.oldCA, signedBy(st.Server, st.CA))
			require.Len(t, st.Fleet, 1)
			got := st.Fleet[0]
			assert.Equal(t, "srv2", got.Record.Name)
			got.Record = store.Record{}
			assert.Equal(t, tc.fleet, got)
		})
	}
}

// TestRotationLeavesHoldersDirectories: step 1 writes no ca.pem into a
// bundle directory another account could change (found by a red team:
// its holder swapped it for a link after the check, and root wrote ca.pem
// into another directory); it says so instead.
func TestRotationLeavesHoldersDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI runs as root")
		}
		t.Skip("as root only: the directory changes owner")
	}
	r := newRotation(t, pki.ECDSAP256)
	bob := r.dir("bob")
	before, err := os.ReadFile(filepath.Join(bob, CACertFile))
	require.NoError(t, err)
	require.NoError(t, os.Chown(bob, 65534, 65534))
	res := r.rotate(t, "")
	assert.Equal(t, 1, res.BundlesUpdated, "alice's, root's, is rewritten")
	assert.Equal(t, 2, res.BundlesTotal)
	require.Len(t, res.BundlesLeft, 1)
	assert.Contains(t, res.BundlesLeft[0], bob+" is not root's (uid 65534)")
	after, err := os.ReadFile(filepath.Join(bob, CACertFile))
	require.NoError(t, err)
	assert.Equal(t, before, after)
}
