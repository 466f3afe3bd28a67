package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// entry is one file of an archive.
type entry struct {
	name string // path in the archive
	src  string // file on disk
	mode int64
}

// archiveEntries are the files of a macOS or Windows archive: the binary
// as exe, the README, the man pages and the completions of that system's
// shells.
func (r *release) archiveEntries(bin, exe string, d *docFiles) []entry {
	es := []entry{{exe, bin, 0o755}, {"README.md", "README.md", 0o644}}
	comps := []string{"dtls.bash", "dtls.zsh", "dtls.fish"}
	if strings.HasSuffix(exe, ".exe") {
		comps = []string{"dtls.ps1"}
	}
	for _, c := range comps {
		es = append(es, entry{"completion/" + c, filepath.Join(d.dir, "completion", c), 0o644})
	}
	if !strings.HasSuffix(exe, ".exe") {
		for _, m := range d.man {
			es = append(es, entry{"man/man1/" + filepath.Base(m), filepath.Join(d.dir, m), 0o644})
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	return es
}

// writeTarGz writes the entries, in order, with mtime and root as owner.
func writeTarGz(path string, es []entry, mtime time.Time) error {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		data, err := os.ReadFile(e.src)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(data)), ModTime: mtime,
			Typeflag: tar.TypeReg, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, gzipBytes(b.Bytes(), gzip.DefaultCompression), 0o644)
}

// writeZip writes the entries, in order, with mtime.
func writeZip(path string, es []entry, mtime time.Time) error {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range es {
		data, err := os.ReadFile(e.src)
		if err != nil {
			return err
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: mtime}
		h.SetMode(os.FileMode(e.mode))
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
