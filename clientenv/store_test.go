package clientenv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeTestBundle(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	for _, f := range append(BundleFiles, MetaFile) {
		data := "x"
		if f == MetaFile {
			data = `{"docker_host":"tcp://h:2376"}`
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(data), 0o600))
	}
}

func TestStoreDefault(t *testing.T) {
	root := t.TempDir()
	writeTestBundle(t, filepath.Join(root, "a"))
	writeTestBundle(t, filepath.Join(root, "b"))
	require.NoError(t, os.Mkdir(filepath.Join(root, "broken"), 0o700))

	def, err := Default(root)
	require.NoError(t, err)
	assert.Empty(t, def)
	_, err = SetDefault(root, "b")
	require.NoError(t, err)
	target, err := os.Readlink(filepath.Join(root, DefaultName))
	require.NoError(t, err)
	assert.Equal(t, "b", target, "relative link")
	_, err = SetDefault(root, "a")
	require.NoError(t, err)
	def, err = Default(root)
	require.NoError(t, err)
	assert.Equal(t, "a", def)

	_, err = SetDefault(root, "broken")
	assert.ErrorContains(t, err, "missing")
	_, err = SetDefault(root, "../a")
	assert.ErrorContains(t, err, "invalid bundle name")
	def, _ = Default(root)
	assert.Equal(t, "a", def, "a refused switch changes nothing")

	entries, err := List(root)
	require.NoError(t, err)
	require.Len(t, entries, 3)
	assert.Equal(t, "a", entries[0].Name)
	assert.True(t, entries[0].Default)
	assert.Equal(t, "tcp://h:2376", entries[1].Bundle.Meta.DockerHost)
	assert.Error(t, entries[2].Err)

	getenv := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	// The bundle the link points at, not the link: a shell's
	// DOCKER_CERT_PATH must not follow a later `dtls use` while its
	// DOCKER_HOST stays.
	p, err := CertPath(getenv(map[string]string{EnvHome: root}))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "a"), p)
	empty := t.TempDir()
	p, err = CertPath(getenv(map[string]string{EnvHome: empty}))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(empty, "default"), p, "no link: the path the error names")
	p, err = CertPath(getenv(map[string]string{EnvHome: root, EnvCertPath: "/x"}))
	require.NoError(t, err)
	assert.Equal(t, "/x", p)
	p, err = StoreRoot(getenv(map[string]string{"HOME": "/home/u"}))
	require.NoError(t, err)
	assert.Equal(t, "/home/u/.docker/dtls", p)
}

// TestDefaultCopiedDirectory: a bundle copied by hand to root/default (the
// old advice, scp -r dtls-alice HOST:.docker/dtls/default) is listed as
// the bundle "default", and SetDefault moves it to a name of its own before
// it puts the link there: it is never deleted.
func TestDefaultCopiedDirectory(t *testing.T) {
	root := t.TempDir()
	writeTestBundle(t, filepath.Join(root, "a"))
	copied := filepath.Join(root, DefaultName)
	writeTestBundle(t, copied)
	require.NoError(t, os.WriteFile(filepath.Join(copied, "key.pem"), []byte("the copied key"), 0o600))

	entries, err := List(root)
	require.NoError(t, err)
	require.Len(t, entries, 2)
	assert.Equal(t, "a", entries[0].Name)
	assert.Equal(t, DefaultName, entries[1].Name)
	assert.True(t, entries[1].Default)
	require.NoError(t, entries[1].Err)
	assert.Equal(t, "tcp://h:2376", entries[1].Bundle.Meta.DockerHost)

	// "h", the server of its dtls.json, is free: the directory becomes h.
	moved, err := SetDefault(root, "a")
	require.NoError(t, err)
	assert.Equal(t, "h", moved)
	target, err := os.Readlink(copied)
	require.NoError(t, err)
	assert.Equal(t, "a", target)
	key, err := os.ReadFile(filepath.Join(root, "h", "key.pem"))
	require.NoError(t, err)
	assert.Equal(t, "the copied key", string(key))

	// Taken names get a suffix; a directory that is no bundle is kept too.
	require.NoError(t, os.Remove(copied))
	writeTestBundle(t, copied)
	moved, err = SetDefault(root, "h")
	require.NoError(t, err)
	assert.Equal(t, "h-2", moved)
	require.NoError(t, os.Remove(copied))
	require.NoError(t, os.Mkdir(copied, 0o700))
	moved, err = SetDefault(root, "a")
	require.NoError(t, err)
	assert.Equal(t, "old-default", moved)
	assert.DirExists(t, filepath.Join(root, "old-default"))

	// A file there is refused, and left alone.
	require.NoError(t, os.Remove(copied))
	require.NoError(t, os.WriteFile(copied, []byte("x"), 0o600))
	_, err = SetDefault(root, "a")
	assert.ErrorContains(t, err, "is neither a link nor a directory")
	b, err := os.ReadFile(copied)
	require.NoError(t, err)
	assert.Equal(t, "x", string(b))
}

func TestValidateBundleName(t *testing.T) {
	for _, ok := range []string{"prod", "docker.example.com", "a_b-c@d", "10.0.0.1"} {
		assert.NoError(t, ValidateBundleName(ok), ok)
	}
	for _, bad := range []string{"", "a/b", "..", ".hidden", "-x", "default", "Default", "DEFAULT", "a b", "a\\b"} {
		assert.Error(t, ValidateBundleName(bad), bad)
	}
	assert.Equal(t, "fe80--1", SanitizeBundleName("[fe80::1]"))
	assert.Equal(t, "", SanitizeBundleName("..."))
}

func TestMergeNoProxy(t *testing.T) {
	tests := []struct{ current, host, want, err string }{
		{"", "h.example.com", "h.example.com", ""},
		{"localhost,127.0.0.1", "h.example.com", "localhost,127.0.0.1,h.example.com", ""},
		{"localhost, h.example.com", "h.example.com", "localhost, h.example.com", ""},
		{"localhost,H.EXAMPLE.COM", "h.example.com", "localhost,H.EXAMPLE.COM", ""},
		{"localhost,", "h", "localhost,h", ""},
		{"localhost;127.0.0.1", "h", "", `NO_PROXY value "localhost;127.0.0.1": entry "localhost;127.0.0.1" holds ";"; separate entries with commas only`},
		{"localhost 127.0.0.1", "h", "", `NO_PROXY value "localhost 127.0.0.1": entry "localhost 127.0.0.1" holds " "; separate entries with commas only`},
	}
	for _, tt := range tests {
		got, err := MergeNoProxy(tt.current, tt.host)
		if tt.err != "" {
			assert.EqualError(t, err, tt.err)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, tt.current)
	}
	for in, want := range map[string]string{"tcp://h.example.com:2376": "h.example.com", "tcp://[::1]:2376": "::1", "tcp://10.0.0.1:2376": "10.0.0.1"} {
		got, err := DaemonHost(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := DaemonHost("unix:///x")
	assert.Error(t, err)
}

func TestWriteDotenvAndNushell(t *testing.T) {
	vars := []Var{{"DOCKER_HOST", "tcp://h:2376"}, {"DOCKER_CERT_PATH", `/home/a b/"q"\x`}}
	var b bytes.Buffer
	require.NoError(t, WriteDotenv(&b, vars))
	assert.Equal(t, "DOCKER_HOST=tcp://h:2376\nDOCKER_CERT_PATH=/home/a b/\"q\"\\x\n", b.String())
	b.Reset()
	assert.EqualError(t, WriteDotenv(&b, []Var{{"A", "x\ny"}}), `cannot write A for dotenv: value "x\ny" contains a newline`)
	assert.Empty(t, b.String())

	b.Reset()
	require.NoError(t, WriteSet(&b, Nushell, vars, "ignored"))
	assert.JSONEq(t, `{"DOCKER_HOST":"tcp://h:2376","DOCKER_CERT_PATH":"/home/a b/\"q\"\\x"}`, b.String())
	b.Reset()
	require.NoError(t, WriteUnset(&b, Nushell, VarNames, "ignored"))
	assert.Equal(t, "hide-env --ignore-errors DOCKER_HOST DOCKER_TLS_VERIFY DOCKER_CERT_PATH\n", b.String())
	b.Reset()
	require.NoError(t, WriteSet(&b, Tcsh, vars[:1], "ignored"))
	assert.Equal(t, "setenv DOCKER_HOST 'tcp://h:2376';\n", b.String())

	for comm, want := range map[string]Shell{"bash\n": Bash, "-zsh\n": Zsh, "fish\n": Fish, "tcsh\n": Tcsh, "nu\n": Nushell, "pwsh\n": PowerShell} {
		got, ok := shellOfComm(comm)
		assert.True(t, ok, comm)
		assert.Equal(t, want, got, comm)
	}
	_, ok := shellOfComm("cmd.test\n")
	assert.False(t, ok)
}
