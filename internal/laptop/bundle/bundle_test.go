package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

// testFiles issues a real client bundle valid from now for a day.
func testFiles(t *testing.T, now time.Time) []File {
	t.Helper()
	ca, err := pki.NewCA(pki.CARequest{CommonName: "test CA", KeyType: pki.ECDSAP256, Now: now})
	require.NoError(t, err)
	cl, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: "alice", KeyType: pki.ECDSAP256, Now: now, Validity: 24 * time.Hour})
	require.NoError(t, err)
	meta, err := clientenv.MarshalMeta(clientenv.Meta{Name: "alice", DockerHost: "tcp://docker.example.com:2376", Server: "srv1", NotAfter: cl.Cert.NotAfter})
	require.NoError(t, err)
	return []File{
		{Name: "ca.pem", Data: ca.CertPEM},
		{Name: "cert.pem", Data: cl.CertPEM},
		{Name: "key.pem", Data: cl.KeyPEM},
		{Name: clientenv.MetaFile, Data: meta},
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	now := time.Now()
	files := testFiles(t, now)
	path := filepath.Join(t.TempDir(), "a.tar.gz")
	data, err := MarshalArchive(files)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, ArchiveMode))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, ArchiveMode, fi.Mode().Perm())

	got, err := ReadArchive(path)
	require.NoError(t, err)
	require.Len(t, got, 4)
	for _, f := range files {
		assert.Equal(t, f.Data, Get(got, f.Name), f.Name)
	}
	assert.Equal(t, os.FileMode(0o600), Allowed["key.pem"])

	c, err := Verify(got, now)
	require.NoError(t, err)
	assert.Equal(t, "docker.example.com", c.ServerName())
	assert.Equal(t, "alice", c.Cert.Subject.CommonName)
}

func TestMarshalArchiveRefusesUnexpectedFile(t *testing.T) {
	_, err := MarshalArchive([]File{{Name: "../x", Data: []byte("x")}})
	assert.EqualError(t, err, `archive: unexpected file "../x"`)
}

func TestVerifyRefuses(t *testing.T) {
	now := time.Now()
	files := testFiles(t, now)
	other := testFiles(t, now)
	swap := func(name string, from []File) []File {
		out := append([]File(nil), files...)
		for i := range out {
			if out[i].Name == name {
				out[i].Data = Get(from, name)
			}
		}
		return out
	}
	_, err := Verify(files, now.Add(48*time.Hour))
	assert.ErrorContains(t, err, `cert.pem: the certificate of "alice" expired on`)
	_, err = Verify(swap("key.pem", other), now)
	assert.ErrorContains(t, err, "key.pem does not match cert.pem")
	_, err = Verify(swap("ca.pem", other), now)
	assert.ErrorContains(t, err, "cert.pem does not chain to ca.pem")
	_, err = Verify(swap(clientenv.MetaFile, []File{{Name: clientenv.MetaFile, Data: []byte(`{"docker_host":"unix:///x"}`)}}), now)
	assert.EqualError(t, err, `dtls.json: docker_host: daemon URL "unix:///x": not tcp://: want tcp://HOST:PORT, e.g. tcp://docker.example.com:2376`)
	// A C1 control character (U+0085, NEL) parses as a URL; shell
	// characters in its path, and a list with a user, did too (found by
	// a red team): a docker_host is a host and a port, nothing else.
	for _, h := range []string{"tcp://h\u0085:2376", `tcp://prod.example.com:2376/\\' ;touch X #`, "tcp://*,corp@prod.example.com:2376"} {
		_, err = Verify(swap(clientenv.MetaFile, []File{{Name: clientenv.MetaFile, Data: []byte(`{"docker_host":"` + h + `"}`)}}), now)
		assert.ErrorContains(t, err, "dtls.json: docker_host: daemon URL", h)
	}
}

func TestParseArchiveRefuses(t *testing.T) {
	files := testFiles(t, time.Now())
	tests := []struct {
		name  string
		extra tar.Header
		want  string
	}{
		{"dotdot", tar.Header{Name: "../evil", Typeflag: tar.TypeReg}, `entry "../evil": path escapes the bundle directory`},
		{"dotdot inside", tar.Header{Name: "a/../../evil", Typeflag: tar.TypeReg}, `entry "a/../../evil": path escapes the bundle directory`},
		{"absolute", tar.Header{Name: "/etc/passwd", Typeflag: tar.TypeReg}, `entry "/etc/passwd": absolute path`},
		{"symlink", tar.Header{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, `entry "x": links are not allowed (points to "/etc")`},
		{"hardlink", tar.Header{Name: "x", Typeflag: tar.TypeLink, Linkname: "ca.pem"}, `entry "x": links are not allowed (points to "ca.pem")`},
		{"fifo", tar.Header{Name: "x", Typeflag: tar.TypeFifo}, `entry "x": not a regular file (type '6')`},
		{"duplicate", tar.Header{Name: "./ca.pem", Typeflag: tar.TypeReg}, `entry "./ca.pem": given twice`},
		{"unexpected", tar.Header{Name: "x.sh", Typeflag: tar.TypeReg}, `entry "x.sh": unexpected file (want ca.pem, cert.pem, dtls.json, key.pem)`},
		{"directory", tar.Header{Name: "dtls-alice/", Typeflag: tar.TypeDir}, `entry "dtls-alice/": a directory (the bundle files must be at the top level of the archive)`},
		{"in a directory", tar.Header{Name: "dtls-alice/ca.pem", Typeflag: tar.TypeReg}, `entry "dtls-alice/ca.pem": not at the top level of the archive`},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		for _, f := range files {
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: f.Name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(f.Data))}))
			_, err := tw.Write(f.Data)
			require.NoError(t, err)
		}
		require.NoError(t, tw.WriteHeader(&tt.extra))
		require.NoError(t, tw.Close())
		require.NoError(t, zw.Close())
		_, err := ParseArchive(&buf)
		assert.EqualError(t, err, tt.want, tt.name)
		var layout *LayoutError
		assert.Equal(t, strings.HasPrefix(tt.name, "directory") || tt.name == "in a directory", errors.As(err, &layout), tt.name)
	}
	_, err := ParseArchive(bytes.NewReader(bytes.Repeat([]byte{0x1f}, 10)))
	assert.ErrorContains(t, err, "not a gzip-compressed tar archive")
}

func TestInstall(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	files := testFiles(t, time.Now())
	dir, err := Install(root, "prod", files, false)
	require.NoError(t, err)
	for name, mode := range map[string]os.FileMode{"": 0o700, "key.pem": 0o600, "ca.pem": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), name)
	}
	_, err = Install(root, "prod", files, false)
	assert.EqualError(t, err, `bundle "`+dir+`" already exists`)
	_, err = Install(root, "a/b", files, false)
	assert.EqualError(t, err, `invalid bundle name "a/b": character '/' not allowed (use letters, digits, '.', '_', '@', '-')`)
	_, err = Install(root, "prod", files, true)
	require.NoError(t, err)
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary directory left behind")
}
