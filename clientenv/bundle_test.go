package clientenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testMeta = Meta{
	Name:       "alice",
	DockerHost: "tcp://srv.example.com:2376",
	Server:     "srv.example.com",
	NotAfter:   time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC),
	Serial:     "3f2a9c",
}

// writeBundle creates a complete bundle in dir. The PEM files only need to
// exist: LoadBundle does not parse them.
func writeBundle(tb testing.TB, dir string, m Meta) {
	tb.Helper()
	require.NoError(tb, os.MkdirAll(dir, 0o700))
	for _, name := range BundleFiles {
		require.NoError(tb, os.WriteFile(filepath.Join(dir, name), []byte("-----BEGIN "+name+"-----\n"), 0o600))
	}
	data, err := MarshalMeta(m)
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(filepath.Join(dir, MetaFile), data, 0o644))
}

func TestLoadBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "default")
	writeBundle(t, dir, testMeta)

	b, err := LoadBundle(dir)
	require.NoError(t, err)
	assert.Equal(t, dir, b.Dir)
	assert.Equal(t, testMeta, b.Meta)
}

func TestLoadBundleMissingFile(t *testing.T) {
	for _, name := range append(append([]string{}, BundleFiles...), MetaFile) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeBundle(t, dir, testMeta)
			require.NoError(t, os.Remove(filepath.Join(dir, name)))

			_, err := LoadBundle(dir)
			assert.EqualError(t, err, `bundle "`+dir+`": missing "`+dir+`/`+name+`"`)
			assert.ErrorIs(t, err, fs.ErrNotExist, "callers hint on fs.ErrNotExist")
		})
	}
}

func TestLoadBundleMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := LoadBundle(dir)
	assert.EqualError(t, err, `bundle "`+dir+`": no such directory`)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestLoadBundleNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := LoadBundle(file)
	assert.EqualError(t, err, `bundle "`+file+`": not a directory`)
}

func TestLoadBundleFileIsADirectory(t *testing.T) {
	dir := t.TempDir()
	writeBundle(t, dir, testMeta)
	key := filepath.Join(dir, "key.pem")
	require.NoError(t, os.Remove(key))
	require.NoError(t, os.Mkdir(key, 0o700))

	_, err := LoadBundle(dir)
	assert.EqualError(t, err, `bundle "`+dir+`": "`+key+`" is not a regular file`)
}

func TestLoadBundleBadMeta(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string // after `read bundle metadata "<path>": `
	}{
		{
			name:    "syntax error",
			content: "{\n  \"name\": \"alice\",\n  \"docker_host\": ,\n}\n",
			wantErr: "invalid JSON at line 3, column 18: invalid character ',' looking for beginning of value",
		},
		{
			name:    "empty",
			content: "",
			wantErr: "invalid JSON at line 1, column 1: unexpected end of JSON input",
		},
		{
			name:    "truncated",
			content: "{\n  \"name\": \"alice\"",
			wantErr: "invalid JSON at line 2, column 17: unexpected end of JSON input",
		},
		{
			name:    "trailing data",
			content: "{}\n{}\n",
			wantErr: "invalid JSON at line 2, column 1: invalid character '{' after top-level value",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBundle(t, dir, testMeta)
			p := filepath.Join(dir, MetaFile)
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o644))

			_, err := LoadBundle(dir)
			assert.EqualError(t, err, `read bundle metadata "`+p+`": `+tt.wantErr)
		})
	}
}

func TestLoadBundleBadMetaValue(t *testing.T) {
	// Messages of encoding/json and time vary between Go releases: check
	// the parts that are ours.
	tests := []struct {
		name, content, want string
	}{
		{"wrong type", "{\n  \"name\": 5\n}\n", `invalid JSON at line 2, column 11: `},
		{"bad time", "{\"not_after\": \"yesterday\"}\n", `parsing time "yesterday"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeBundle(t, dir, testMeta)
			p := filepath.Join(dir, MetaFile)
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o644))

			_, err := LoadBundle(dir)
			require.Error(t, err)
			assert.Contains(t, err.Error(), `read bundle metadata "`+p+`": `+tt.want)
		})
	}
}

func TestLoadBundleIgnoresUnknownFields(t *testing.T) {
	// A bundle written by a newer dtls must still load.
	dir := t.TempDir()
	writeBundle(t, dir, testMeta)
	require.NoError(t, os.WriteFile(filepath.Join(dir, MetaFile),
		[]byte(`{"name": "alice", "docker_host": "tcp://h:2376", "future": {"x": 1}}`), 0o644))

	b, err := LoadBundle(dir)
	require.NoError(t, err)
	assert.Equal(t, "tcp://h:2376", b.Meta.DockerHost)
}

func TestLoadBundleRelativeDir(t *testing.T) {
	tmp := t.TempDir()
	writeBundle(t, filepath.Join(tmp, "bundles", "default"), testMeta)
	t.Chdir(tmp)

	for _, rel := range []string{"bundles/default", "./bundles/default/", "bundles/../bundles/default"} {
		b, err := LoadBundle(rel)
		require.NoError(t, err, rel)
		assert.Equal(t, filepath.Join(tmp, "bundles", "default"), b.Dir, rel)
	}

	_, err := LoadBundle("missing")
	assert.EqualError(t, err, `bundle "`+filepath.Join(tmp, "missing")+`": no such directory`,
		"errors name the absolute path that was tried")
}

func TestMarshalMeta(t *testing.T) {
	data, err := MarshalMeta(testMeta)
	require.NoError(t, err)
	assert.Equal(t, `{
  "name": "alice",
  "docker_host": "tcp://srv.example.com:2376",
  "server": "srv.example.com",
  "not_after": "2027-03-01T12:00:00Z",
  "serial": "3f2a9c"
}
`, string(data))
}
