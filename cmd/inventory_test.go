package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/atomicfile"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/pki"
)

// dtlsExe returns a path that runs the test binary as the dtls command
// (testscript.Main dispatches on the program's base name), for tests that
// need real processes: parallel runs, kill -9.
func dtlsExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "dtls")
	require.NoError(t, os.Symlink(exe, p))
	return p
}

// newInstall runs init into a fresh temporary tree and returns the state
// directory and the flags that point every command at it.
func newInstall(t *testing.T) (string, []string) {
	t.Helper()
	w := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(w, "systemd"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(w, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(w, "etc", "daemon.json"), []byte("{}\n"), 0o644))
	state := filepath.Join(w, "state")
	_, errOut, code := dtls(t, time.Now(), "init", "--host", "localhost", "--host", "127.0.0.1",
		"--state-dir", state, "--certs-dir", filepath.Join(w, "certs"),
		"--daemon-json", filepath.Join(w, "etc", "daemon.json"), "--systemd-dir", filepath.Join(w, "systemd"))
	require.Equal(t, 0, code, errOut)
	return state, []string{"--state-dir", state}
}

func records(t *testing.T, state string) []store.Record {
	t.Helper()
	st, err := store.Open(filepath.Join(state, authority.DBFile))
	require.NoError(t, err)
	defer st.Close()
	recs, err := st.All()
	require.NoError(t, err)
	return recs
}

func clientRecords(t *testing.T, state string) map[string]store.Record {
	t.Helper()
	out := map[string]store.Record{}
	for _, r := range records(t, state) {
		if r.Kind == store.KindClient {
			out[r.Serial] = r
		}
	}
	return out
}

// checkBundles asserts the invariant a killed run must keep: every client
// record has its complete bundle, holding that very certificate; and, when
// exact, every bundle in dir has its record and no temporary directory is
// left.
func checkBundles(t *testing.T, state, dir string, exact bool) int {
	t.Helper()
	recs := clientRecords(t, state)
	for _, r := range recs {
		cert, err := os.ReadFile(filepath.Join(r.Path, "cert.pem"))
		if assert.NoError(t, err, "record %s without its bundle", r.Name) {
			assert.Equal(t, r.PEM, string(cert), "bundle of %s holds another certificate", r.Name)
		}
		for _, f := range []string{"key.pem", "ca.pem", "dtls.json"} {
			assert.FileExists(t, filepath.Join(r.Path, f))
		}
		key, err := os.ReadFile(filepath.Join(r.Path, "key.pem"))
		if assert.NoError(t, err) {
			k, err := pki.ParsePrivateKey(key)
			require.NoError(t, err)
			c, err := r.Cert()
			require.NoError(t, err)
			assert.True(t, pki.KeyMatches(c, k), "key of %s does not match", r.Name)
		}
	}
	if exact {
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			require.NoError(t, err)
		}
		byPath := map[string]bool{}
		for _, r := range recs {
			byPath[r.Path] = true
		}
		for _, e := range entries {
			assert.False(t, strings.HasPrefix(e.Name(), "."), "temporary %s left behind", e.Name())
			assert.True(t, byPath[filepath.Join(dir, e.Name())], "bundle %s has no record", e.Name())
		}
		j, _ := filepath.Glob(filepath.Join(state, authority.JournalDir, "*"))
		assert.Empty(t, j, "journal left behind")
	}
	return len(recs)
}

// TestParallelIssue: 50 issue-client processes started at once leave 50
// records with 50 distinct serials and 50 complete bundles.
func TestParallelIssue(t *testing.T) {
	t.Parallel()
	exe := dtlsExe(t)
	state, flags := newInstall(t)
	out := filepath.Join(t.TempDir(), "bundles")
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([][]byte, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			args := append([]string{"issue-client", fmt.Sprintf("user%02d", i), "--out", filepath.Join(out, fmt.Sprintf("user%02d", i))}, flags...)
			outs[i], errs[i] = exec.Command(exe, args...).CombinedOutput()
		}(i)
	}
	close(start)
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i], string(outs[i]))
	}
	recs := clientRecords(t, state)
	assert.Len(t, recs, n, "records")
	names := map[string]bool{}
	for _, r := range recs {
		names[r.Name] = true
	}
	assert.Len(t, names, n, "distinct names")
	assert.Equal(t, n, checkBundles(t, state, out, true))
}

// TestKillDuringBulk kill -9s a bulk issuance mid-way: whatever it left,
// no record lacks its bundle, the next run finishes the whole batch, and
// the one after works.
func TestKillDuringBulk(t *testing.T) {
	t.Parallel()
	exe := dtlsExe(t)
	state, flags := newInstall(t)
	out := filepath.Join(t.TempDir(), "bundles")
	names := make([]string, 300)
	for i := range names {
		names[i] = fmt.Sprintf("bulk%03d", i)
	}
	cmd := exec.Command(exe, append(append([]string{"issue-client"}, names...), append([]string{"--out", out}, flags...)...)...)
	require.NoError(t, cmd.Start())
	// Kill it once bundles are being written.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if e, _ := os.ReadDir(out); len(e) >= 20 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	checkBundles(t, state, out, false)
	if j, _ := filepath.Glob(filepath.Join(state, authority.JournalDir, "*.json")); len(j) == 0 {
		t.Fatal("the kill came too late to test anything: no journal left")
	}

	// The next run finishes the batch from its journal: one issuance
	// is all or nothing.
	b, err := exec.Command(exe, append([]string{"list", "-o", "json"}, flags...)...).CombinedOutput()
	require.NoError(t, err, string(b))
	got := checkBundles(t, state, out, true)
	assert.Equal(t, len(names), got, "the killed batch was finished")

	// The next run issues the rest.
	var rest []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(out, n)); err != nil {
			rest = append(rest, n)
		}
	}
	assert.Empty(t, rest, "bundles missing after the batch was finished")
	b, err = exec.Command(exe, append([]string{"issue-client", "after-kill", "--out", filepath.Join(out, "after-kill")}, flags...)...).CombinedOutput()
	require.NoError(t, err, string(b))
	assert.Equal(t, len(names)+1, checkBundles(t, state, out, true))
}

// TestNotADatabase: a dtls.db that is not a database is an error and is
// left untouched.
func TestNotADatabase(t *testing.T) {
	state, flags := newInstall(t)
	db := filepath.Join(state, authority.DBFile)
	require.NoError(t, os.Remove(db))
	junk := []byte("this is not a database, it is a text file\n")
	require.NoError(t, os.WriteFile(db, junk, 0o600))
	_, errOut, code := dtls(t, time.Now(), append([]string{"list"}, flags...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not an SQLite database")
	_, errOut, code = dtls(t, time.Now(), append([]string{"issue-client", "zed", "--out", filepath.Join(t.TempDir(), "zed")}, flags...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not an SQLite database")
	b, err := os.ReadFile(db)
	require.NoError(t, err)
	assert.Equal(t, junk, b)
	assert.NoFileExists(t, db+"-wal")
}

// TestImportExisting: an install made before the database (CA files and
// issued/SERIAL.pem copies) is imported on first use; of two certificates
// for one name the newer is in use and the older superseded.
func TestImportExisting(t *testing.T) {
	now := time.Now()
	state := filepath.Join(t.TempDir(), "state")
	require.NoError(t, atomicfile.MkdirAll(filepath.Join(state, authority.IssuedDir), 0o700))
	ca, err := pki.NewCA(pki.CARequest{CommonName: "old CA", Now: now})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(state, authority.CACertFile), ca.CertPEM, 0o444))
	require.NoError(t, os.WriteFile(filepath.Join(state, authority.CAKeyFile), ca.KeyPEM, 0o400))
	var serials []string
	for i, req := range []pki.Request{
		{Kind: pki.KindServer, Hosts: []string{"docker.example.com"}, Now: now.Add(-48 * time.Hour)},
		{Kind: pki.KindClient, CommonName: "alice", Now: now.Add(-48 * time.Hour)},
		{Kind: pki.KindClient, CommonName: "alice", Now: now.Add(-24 * time.Hour)},
	} {
		c, err := ca.Issue(req)
		require.NoError(t, err, i)
		serials = append(serials, pki.Serial(c.Cert))
		require.NoError(t, os.WriteFile(filepath.Join(state, authority.IssuedDir, pki.Serial(c.Cert)+".pem"), c.CertPEM, 0o444))
	}
	stdout, errOut, code := dtls(t, now, "list", "--state-dir", state, "-o", "json")
	require.Equal(t, 0, code, errOut)
	var got []listEntry
	require.NoError(t, json.Unmarshal([]byte(stdout), &got))
	status := map[string]string{}
	for _, e := range got {
		status[e.Serial] = e.Kind + "/" + e.Name + "/" + e.Status
	}
	assert.Equal(t, map[string]string{
		pki.Serial(ca.Cert): "ca/old CA/valid",
		serials[0]:          "server/docker.example.com/valid",
		serials[1]:          "client/alice/superseded",
		serials[2]:          "client/alice/valid",
	}, status)

	// Revoking the CA is refused, by serial too.
	_, errOut, code = dtls(t, now, "revoke", pki.Serial(ca.Cert), "--state-dir", state)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "a CA cannot be revoked")
}

// TestFlagGroupsExitUsage: flags that exclude each other are a usage
// error, exit 2, like every other bad command line.
func TestFlagGroupsExitUsage(t *testing.T) {
	state, flags := newInstall(t)
	for _, args := range [][]string{
		append([]string{"issue-client", "alice", "--passphrase-file", "x", "--passphrase-env", "Y"}, flags...),
		append([]string{"revoke", "alice", "--passphrase-file", "x", "--passphrase-env", "Y"}, flags...),
		{"init", "--ca-from", "x", "--force", "--state-dir", state},
	} {
		_, errOut, code := dtls(t, time.Now(), args...)
		assert.Equal(t, 2, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "none of the others can be", args)
	}
}

// TestBundleTargetProtected: --out --force replaces a bundle, never the
// state directory (the CA key), the certs directory, a directory above
// them, or a directory that holds anything but a bundle; renew --out
// replaces nothing.
func TestBundleTargetProtected(t *testing.T) {
	t.Parallel()
	state, flags := newInstall(t)
	w := filepath.Dir(state)
	other := filepath.Join(w, "home")
	require.NoError(t, os.MkdirAll(other, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine\n"), 0o644))
	_, errOut, code := dtls(t, time.Now(), append([]string{"issue-client", "alice", "--out", filepath.Join(w, "alice")}, flags...)...)
	require.Equal(t, 0, code, errOut)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"issue-client", "bob", "--force", "--out", state}, "overlaps"},
		{[]string{"issue-client", "bob", "--force", "--out", filepath.Join(state, "journal")}, "overlaps"},
		{[]string{"issue-client", "bob", "--force", "--out", w}, "overlaps"},
		{[]string{"issue-client", "bob", "--force", "--out", filepath.Join(w, "certs")}, "overlaps"},
		{[]string{"issue-client", "bob", "--force", "--out", other}, `holds "notes.txt", which is not part of a bundle`},
		{[]string{"issue-server", "docker2.example.com", "--force", "--out", state}, "overlaps"},
		{[]string{"renew", "alice", "--out", state}, "overlaps"},
		{[]string{"renew", "alice", "--out", other}, "already exists"},
	} {
		_, errOut, code := dtls(t, time.Now(), append(c.args, flags...)...)
		assert.Equal(t, 1, code, "%v: %s", c.args, errOut)
		assert.Contains(t, errOut, c.msg, c.args)
	}
	assert.FileExists(t, filepath.Join(state, authority.CAKeyFile))
	assert.FileExists(t, filepath.Join(state, authority.DBFile))
	assert.FileExists(t, filepath.Join(w, "certs", authority.ServerKeyFile))
	assert.FileExists(t, filepath.Join(other, "notes.txt"))
	assert.Len(t, clientRecords(t, state), 1)
}

// TestRevokeCRL: revoked_at is the command's clock, and every CRL gets a
// higher number than the one it replaces, even within one second.
func TestRevokeCRL(t *testing.T) {
	state, flags := newInstall(t)
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	out := t.TempDir()
	_, errOut, code := dtls(t, now, append([]string{"issue-client", "alice", "bob", "--out", out}, flags...)...)
	require.Equal(t, 0, code, errOut)
	var numbers []int64
	for _, name := range []string{"alice", "bob"} {
		_, errOut, code := dtls(t, now, append([]string{"revoke", name, "--reason", "keyCompromise"}, flags...)...)
		require.Equal(t, 0, code, errOut)
		b, err := os.ReadFile(filepath.Join(state, authority.CRLFile))
		require.NoError(t, err)
		crl, err := fixture.ParseCRL(b)
		require.NoError(t, err)
		numbers = append(numbers, crl.Number.Int64())
		for _, e := range crl.RevokedCertificateEntries {
			assert.True(t, now.Equal(e.RevocationTime), "revocation time %v, want %v", e.RevocationTime, now)
			assert.Equal(t, 1, e.ReasonCode)
		}
		assert.True(t, now.Add(pki.DefaultCRLValidity).Equal(crl.NextUpdate))
	}
	assert.Greater(t, numbers[1], numbers[0], "CRL numbers")
	// Revoking again is refused and changes nothing.
	_, errOut, code = dtls(t, now, append([]string{"revoke", "bob"}, flags...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "already revoked")
}

// TestNameKindCollision: a client cannot take a server certificate's name
// nor the reverse, since revoke and renew go by name.
func TestNameKindCollision(t *testing.T) {
	state, flags := newInstall(t)
	out := t.TempDir()
	_, errOut, code := dtls(t, time.Now(), append([]string{"issue-server", "docker2.example.com", "--out", filepath.Join(out, "srv2")}, flags...)...)
	require.Equal(t, 0, code, errOut)
	_, errOut, code = dtls(t, time.Now(), append([]string{"issue-client", "docker2.example.com", "--out", filepath.Join(out, "c")}, flags...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `"docker2.example.com" is already the name of a server certificate`)
	assert.NoDirExists(t, filepath.Join(out, "c"))
	_, errOut, code = dtls(t, time.Now(), append([]string{"issue-client", "carol", "--out", filepath.Join(out, "carol")}, flags...)...)
	require.Equal(t, 0, code, errOut)
	_, errOut, code = dtls(t, time.Now(), append([]string{"issue-server", "carol", "--out", filepath.Join(out, "s")}, flags...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `"carol" is already the name of a client certificate`)
	assert.NoDirExists(t, filepath.Join(out, "s"))
	_ = state
}

// TestRenewPartialFailure: when a bulk renewal fails half-way, the bundles
// already replaced are recorded: no certificate is out without its record,
// and no record is left pointing at a bundle that holds another one.
func TestRenewPartialFailure(t *testing.T) {
	state, flags := newInstall(t)
	out := t.TempDir()
	for _, n := range []string{"alice", "bob"} {
		_, errOut, code := dtls(t, time.Now(), append([]string{"issue-client", n, "--out", filepath.Join(out, n, "b")}, flags...)...)
		require.Equal(t, 0, code, errOut)
	}
	// bob's bundle cannot be written: its parent is now a file.
	require.NoError(t, os.RemoveAll(filepath.Join(out, "bob")))
	require.NoError(t, os.WriteFile(filepath.Join(out, "bob"), nil, 0o644))
	_, errOut, code := dtls(t, time.Now(), append([]string{"renew", "--expiring", "100d"}, flags...)...)
	assert.Equal(t, 1, code, errOut)
	good := 0
	for _, r := range clientRecords(t, state) {
		if r.Status != store.StatusGood || r.Name != "alice" {
			continue
		}
		good++
		cert, err := os.ReadFile(filepath.Join(r.Path, "cert.pem"))
		require.NoError(t, err)
		assert.Equal(t, r.PEM, string(cert), "alice's good record is the certificate in her bundle")
	}
	assert.Equal(t, 1, good)
	j, _ := filepath.Glob(filepath.Join(state, authority.JournalDir, "*"))
	assert.Empty(t, j, "journal left behind")
}
