package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPackageVersion(t *testing.T) {
	at := time.Date(2026, 12, 7, 5, 42, 27, 0, time.UTC)
	const commit = "e259215202827732c9ff2677baad1f6ab2d96724"
	assert.Equal(t, "1.2.3", packageVersion("v1.2.3", commit, at))
	assert.Equal(t, "1.2.3", packageVersion("v1.2.3-dirty", commit, at))
	assert.Equal(t, "0.0.0~git20261207054227.e259215", packageVersion("e259215", commit, at))
	assert.Equal(t, "0.0.0~git20261207054227.e259215", packageVersion("v1.2.3-4-ge259215", commit, at))
}

// TestArchivesReproducible: a tar.gz and a zip of files written at
// different times are the same bytes, with the given time on every
// entry, entries in name order and root as owner.
func TestArchivesReproducible(t *testing.T) {
	mtime := time.Date(2026, 12, 7, 5, 42, 27, 0, time.UTC)
	var outs [2][2][]byte
	for i := range outs {
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		require.NoError(t, os.WriteFile(a, []byte("binary"), 0o600))
		require.NoError(t, os.WriteFile(b, []byte("readme"), 0o600))
		require.NoError(t, os.Chtimes(a, time.Now(), time.Now().Add(time.Duration(i)*time.Hour)))
		es := []entry{{"dtls", a, 0o755}, {"README.md", b, 0o644}}
		require.NoError(t, writeTarGz(filepath.Join(dir, "x.tar.gz"), es, mtime))
		require.NoError(t, writeZip(filepath.Join(dir, "x.zip"), es, mtime))
		var err error
		outs[i][0], err = os.ReadFile(filepath.Join(dir, "x.tar.gz"))
		require.NoError(t, err)
		outs[i][1], err = os.ReadFile(filepath.Join(dir, "x.zip"))
		require.NoError(t, err)
	}
	assert.Equal(t, outs[0][0], outs[1][0], "tar.gz")
	assert.Equal(t, outs[0][1], outs[1][1], "zip")

	zr, err := gzip.NewReader(bytes.NewReader(outs[0][0]))
	require.NoError(t, err)
	assert.True(t, zr.ModTime.IsZero())
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	require.NoError(t, err)
	assert.Equal(t, "dtls", h.Name)
	assert.Equal(t, int64(0o755), h.Mode)
	assert.Equal(t, "root", h.Uname)
	assert.True(t, h.ModTime.Equal(mtime), h.ModTime)
	_, _ = io.Copy(io.Discard, tr)

	r, err := zip.NewReader(bytes.NewReader(outs[0][1]), int64(len(outs[0][1])))
	require.NoError(t, err)
	require.Len(t, r.File, 2)
	assert.True(t, r.File[0].Modified.Equal(mtime), r.File[0].Modified)
}

// TestSBOM: the SBOM of a Go binary names it, its hash, and the modules
// it links with their versions, and is the same when written again.
func TestSBOM(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "prog")
	data, err := os.ReadFile(exe)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))
	mtime := time.Date(2026, 12, 7, 5, 42, 27, 0, time.UTC)
	require.NoError(t, writeSBOM(bin, "v1.2.3", "e259215202827732c9ff2677baad1f6ab2d96724", mtime))
	first, err := os.ReadFile(bin + ".cdx.json")
	require.NoError(t, err)
	require.NoError(t, writeSBOM(bin, "v1.2.3", "e259215202827732c9ff2677baad1f6ab2d96724", mtime))
	again, err := os.ReadFile(bin + ".cdx.json")
	require.NoError(t, err)
	assert.Equal(t, first, again)

	var doc bom
	require.NoError(t, json.Unmarshal(first, &doc))
	assert.Equal(t, "CycloneDX", doc.BOMFormat)
	assert.Regexp(t, `^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, doc.SerialNumber)
	assert.Equal(t, "2026-12-07T05:42:27Z", doc.Metadata.Timestamp)
	assert.Equal(t, "v1.2.3", doc.Metadata.Component.Version)
	assert.Contains(t, doc.Metadata.Component.Properties, property{"vcs.revision", "e259215202827732c9ff2677baad1f6ab2d96724"})
	require.Len(t, doc.Metadata.Component.Hashes, 1)
	assert.Len(t, doc.Metadata.Component.Hashes[0].Content, 64)
	names := map[string]string{}
	for _, c := range doc.Components {
		names[c.Name] = c.Version
	}
	// This program links nfpm.
	assert.NotEmpty(t, names["github.com/goreleaser/nfpm/v2"])
}
