package dockercontext

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testContext() Context {
	return Context{Name: "prod", Description: "dtls bundle for tcp://h:2376", Host: "tcp://h:2376",
		CA: []byte("ca"), Cert: []byte("cert"), Key: []byte("key")}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"prod", "p1", "a.b_c+d-e", "10.0.0.1"} {
		assert.NoError(t, ValidateName(ok), ok)
	}
	// docker/cli: "default" is reserved, one character is too short, and
	// the first character is a letter or digit.
	for _, bad := range []string{"", "default", "p", "-x", ".x", "a/b", "a b", "a@b", "../x"} {
		assert.Error(t, ValidateName(bad), bad)
	}
}

// TestID: the directory name is the hex SHA-256 of the name, as docker/cli's
// contextdirOf (digest.FromString(name).Encoded()).
func TestID(t *testing.T) {
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ID(""))
}

func TestCreate(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "docker")
	c := testContext()
	require.NoError(t, Create(cfg, c, false))

	metaFile, tlsDir := Paths(cfg, "prod")
	assert.Equal(t, filepath.Join(cfg, "contexts", "meta", ID("prod"), "meta.json"), metaFile)
	data, err := os.ReadFile(metaFile)
	require.NoError(t, err)
	assert.JSONEq(t, `{"Name":"prod","Metadata":{"Description":"dtls bundle for tcp://h:2376"},
		"Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":false}}}`, string(data))
	for name, want := range map[string]struct {
		data string
		mode os.FileMode
	}{"ca.pem": {"ca", 0o644}, "cert.pem": {"cert", 0o644}, "key.pem": {"key", 0o600}} {
		p := filepath.Join(tlsDir, "docker", name)
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, want.data, string(got))
		fi, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, want.mode, fi.Mode().Perm(), p)
	}
	for _, d := range []string{tlsDir, filepath.Join(tlsDir, "docker"), filepath.Dir(metaFile)} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), d)
	}

	// An existing context is kept without force, replaced with it.
	c2 := c
	c2.Host, c2.Key = "tcp://other:2376", []byte("key2")
	err = Create(cfg, c2, false)
	var exists *ExistsError
	require.True(t, errors.As(err, &exists), "%v", err)
	assert.Contains(t, err.Error(), metaFile)
	got, _ := os.ReadFile(filepath.Join(tlsDir, "docker", "key.pem"))
	assert.Equal(t, "key", string(got), "a refused create changes nothing")
	require.NoError(t, Create(cfg, c2, true))
	got, _ = os.ReadFile(filepath.Join(tlsDir, "docker", "key.pem"))
	assert.Equal(t, "key2", string(got))

	// A bad name writes nothing.
	bad := c
	bad.Name = "default"
	cfg2 := filepath.Join(t.TempDir(), "docker")
	require.Error(t, Create(cfg2, bad, false))
	assert.NoDirExists(t, cfg2)
}

// TestExport: the entries, in the order and with the types docker/cli's
// store.Export writes them, which its importTar reads (regular files only,
// paths clean, meta.json and tls/<endpoint>/<file>).
func TestExport(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Export(&buf, testContext()))
	tr := tar.NewReader(&buf)
	type entry struct {
		name string
		typ  byte
		mode int64
		data string
	}
	var got []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		got = append(got, entry{h.Name, h.Typeflag, h.Mode, string(data)})
	}
	require.Len(t, got, 6)
	assert.Equal(t, entry{"tls", tar.TypeDir, 0o700, ""}, got[1])
	assert.Equal(t, entry{"tls/docker", tar.TypeDir, 0o700, ""}, got[2])
	assert.Equal(t, entry{"tls/docker/ca.pem", tar.TypeReg, 0o600, "ca"}, got[3])
	assert.Equal(t, entry{"tls/docker/cert.pem", tar.TypeReg, 0o600, "cert"}, got[4])
	assert.Equal(t, entry{"tls/docker/key.pem", tar.TypeReg, 0o600, "key"}, got[5])
	assert.Equal(t, "meta.json", got[0].name)
	assert.Equal(t, byte(tar.TypeReg), got[0].typ)
	assert.JSONEq(t, `{"Name":"prod","Metadata":{"Description":"dtls bundle for tcp://h:2376"},
		"Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":false}}}`, got[0].data)

	bad := testContext()
	bad.Name = "-x"
	buf.Reset()
	require.Error(t, Export(&buf, bad))
	assert.Zero(t, buf.Len())
}

func TestConfigDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	d, err := ConfigDir(env(map[string]string{"DOCKER_CONFIG": "/cfg", "HOME": "/home/u"}))
	require.NoError(t, err)
	assert.Equal(t, "/cfg", d)
	d, err = ConfigDir(env(map[string]string{"HOME": "/home/u"}))
	require.NoError(t, err)
	assert.Equal(t, "/home/u/.docker", d)
}
