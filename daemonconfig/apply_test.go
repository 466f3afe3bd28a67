package daemonconfig

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helperEnv makes the test binary run one Apply and print its error, so that
// a test running as root can check what an unprivileged user gets.
const helperEnv = "DTLS_DAEMONCONFIG_APPLY_AS_HELPER"

func TestMain(m *testing.M) {
	if p := os.Getenv(helperEnv); p != "" {
		_, err := Apply(p, testSettings, time.Now(), true)
		fmt.Print(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var testNow = time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))

const testBackupSuffix = ".dtls-backup-20240102T020405Z"

func writeFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), mode))
	require.NoError(t, os.Chmod(path, mode))
}

func fileOwner(t *testing.T, path string) (uid, gid int) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestApplyExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon.json")
	old := "{\n  \"debug\": true\n}\n"
	writeFile(t, path, old, 0o640)
	asRoot := os.Geteuid() == 0
	if asRoot {
		require.NoError(t, os.Chown(path, 1234, 5678))
	}
	wantUID, wantGID := fileOwner(t, path)

	r, err := Apply(path, testSettings, testNow, false)
	require.NoError(t, err)
	assert.True(t, r.Existed)
	assert.True(t, r.Changed)
	assert.Equal(t, old, string(r.Old))
	assert.Equal(t, path+testBackupSuffix, r.Backup)
	assert.NotEmpty(t, r.Changes)

	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(r.New), string(got))
	assert.JSONEq(t, `{"debug": true, "hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"],
		"tlsverify": true, "tlscacert": "/etc/docker/dtls/ca.pem",
		"tlscert": "/etc/docker/dtls/server-cert.pem", "tlskey": "/etc/docker/dtls/server-key.pem"}`, string(got))
	assert.Equal(t, fs.FileMode(0o640), fileMode(t, path))

	backup, err := os.ReadFile(r.Backup)
	require.NoError(t, err)
	assert.Equal(t, old, string(backup))
	assert.Equal(t, fs.FileMode(0o640), fileMode(t, r.Backup))

	for _, p := range []string{path, r.Backup} {
		uid, gid := fileOwner(t, p)
		assert.Equal(t, wantUID, uid, p)
		assert.Equal(t, wantGID, gid, p)
	}
	if asRoot {
		assert.Equal(t, 1234, wantUID)
	}
	assert.ElementsMatch(t, []string{"daemon.json", "daemon.json" + testBackupSuffix}, dirEntries(t, dir), "temporary files left behind")

	// Nothing left to change: no backup, no write.
	r2, err := Apply(path, testSettings, testNow.Add(time.Hour), false)
	require.NoError(t, err)
	assert.False(t, r2.Changed)
	assert.Empty(t, r2.Backup)
	assert.Empty(t, r2.Changes)
	assert.Len(t, dirEntries(t, dir), 2)

	// Restore puts the old file back with its mode and owner.
	require.NoError(t, r.Restore())
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, old, string(got))
	assert.Equal(t, fs.FileMode(0o640), fileMode(t, path))
	uid, gid := fileOwner(t, path)
	assert.Equal(t, wantUID, uid)
	assert.Equal(t, wantGID, gid)
}

func TestApplyBackupNameTaken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon.json")
	writeFile(t, path, "{}", 0o644)
	writeFile(t, path+testBackupSuffix, "older backup", 0o644)

	r, err := Apply(path, testSettings, testNow, false)
	require.NoError(t, err)
	assert.Equal(t, path+testBackupSuffix+".1", r.Backup)
	older, err := os.ReadFile(path + testBackupSuffix)
	require.NoError(t, err)
	assert.Equal(t, "older backup", string(older))
}

func TestApplyNewFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "docker")
	path := filepath.Join(dir, "daemon.json")

	r, err := Apply(path, testSettings, testNow, false)
	require.NoError(t, err)
	assert.False(t, r.Existed)
	assert.True(t, r.Changed)
	assert.Empty(t, r.Backup)
	assert.Nil(t, r.Old)
	assert.Equal(t, fs.FileMode(0o644), fileMode(t, path))
	assert.Equal(t, fs.FileMode(0o755), fileMode(t, dir))
	uid, _ := fileOwner(t, path)
	assert.Equal(t, os.Geteuid(), uid)

	require.NoError(t, r.Restore())
	assert.NoFileExists(t, path)
}

func TestApplyDryRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "daemon.json")
	writeFile(t, path, `{"debug": true}`, 0o600)

	r, err := Apply(path, testSettings, testNow, true)
	require.NoError(t, err)
	assert.True(t, r.Changed)
	assert.Empty(t, r.Backup)
	assert.Contains(t, string(r.New), `"tlsverify": true`)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `{"debug": true}`, string(got))
	assert.Equal(t, []string{"daemon.json"}, dirEntries(t, dir))
	require.NoError(t, r.Restore(), "restoring a dry run is a no-op")
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `{"debug": true}`, string(got))

	missing := filepath.Join(dir, "sub", "daemon.json")
	r, err = Apply(missing, testSettings, testNow, true)
	require.NoError(t, err)
	assert.True(t, r.Changed)
	assert.NoDirExists(t, filepath.Dir(missing))
}

func TestApplyRefuses(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.json")
	writeFile(t, target, "{}", 0o644)
	link := filepath.Join(dir, "daemon.json")
	require.NoError(t, os.Symlink(target, link))
	malformed := filepath.Join(dir, "malformed.json")
	const bad = "{\n  \"debug\": true,\n}\n"
	writeFile(t, malformed, bad, 0o644)
	wrongType := filepath.Join(dir, "wrong.json")
	writeFile(t, wrongType, `{"hosts": {"a": 1}}`, 0o644)
	fifo := filepath.Join(dir, "fifo.json")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))

	for _, tc := range []struct {
		name, path, want string
	}{
		{"directory", dir, fmt.Sprintf("daemon config %q is a directory", dir)},
		{"symlink", link, fmt.Sprintf("daemon config %q is a symlink to %q; point --daemon-json at the real file", link, target)},
		{"malformed", malformed, fmt.Sprintf(`read daemon config %q: invalid JSON at line 3, column 1: invalid character '}' looking for beginning of object key string`, malformed)},
		{"wrong type", wrongType, fmt.Sprintf(`read daemon config %q: "hosts" must be a list of strings, not an object`, wrongType)},
		{"fifo", fifo, fmt.Sprintf("daemon config %q is not a regular file", fifo)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := dirEntries(t, dir)
			r, err := Apply(tc.path, testSettings, testNow, false)
			assert.EqualError(t, err, tc.want)
			assert.Nil(t, r)
			assert.Equal(t, before, dirEntries(t, dir), "Apply wrote something")
		})
	}
	got, err := os.ReadFile(malformed)
	require.NoError(t, err)
	assert.Equal(t, bad, string(got))
}

func TestApplyUnreadable(t *testing.T) {
	// Root reads any file whatever its mode, so as root the check runs in a
	// copy of this test binary started as nobody (uid 65534).
	dir, err := os.MkdirTemp("", "dtls-daemonconfig-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	path := filepath.Join(dir, "daemon.json")
	writeFile(t, path, "{}", 0o000)
	want := fmt.Sprintf("read daemon config %q: open %s: permission denied", path, path)

	if os.Geteuid() != 0 {
		_, err := Apply(path, testSettings, testNow, true)
		assert.EqualError(t, err, want)
		return
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(dir, "daemonconfig.test")
	copyFile(t, exe, bin, 0o755)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, want, string(out))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "{}", string(got))
}

func copyFile(t *testing.T, src, dst string, mode fs.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}
