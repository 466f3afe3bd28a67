// Package bundle owns a client bundle as it travels and lands: the one-file
// archive (tar.gz) that `dtls issue-client --archive` writes, its strict
// reading, the checks `dtls import` makes before it installs a bundle
// (expiry, key match, chain to ca.pem), and the installation into the
// bundle store that clientenv describes.
//
// It parses certificates, so it is kept out of `dtls env`'s path, which
// only needs clientenv.
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/clientenv"
)

// MaxArchiveSize bounds an archive's total uncompressed content (and its
// compressed size): a real bundle is a few kilobytes, so anything near this
// is not a bundle, and a gzip bomb stops here.
const MaxArchiveSize = 1 << 20

// ArchiveMode is the mode of an archive file: it holds a private key.
const ArchiveMode fs.FileMode = 0o600

// File is one file of a bundle.
type File struct {
	// Name is the base name: one of clientenv.BundleFiles or
	// clientenv.MetaFile.
	Name string
	// Data is the content.
	Data []byte
	// Mode is the permission the file gets when installed.
	Mode fs.FileMode
}

// Allowed lists the names an archive may hold, with the mode each gets on
// disk: the key 0600, the rest 0644.
var Allowed = map[string]fs.FileMode{
	clientenv.CAFile:   0o644,
	clientenv.CertFile: 0o644,
	clientenv.KeyFile:  0o600,
	clientenv.MetaFile: 0o644,
}

// MarshalArchive returns files as a gzip-compressed tar. Entries are
// plain files at the top level of the archive, with mode 0600, owner 0
// and a fixed time, so the same bundle makes the same archive.
func MarshalArchive(files []File) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	seen := map[string]bool{}
	for _, f := range files {
		if _, ok := Allowed[f.Name]; !ok {
			return nil, fmt.Errorf("archive: unexpected file %q", f.Name)
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("archive: file %q given twice", f.Name)
		}
		seen[f.Name] = true
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     0o600,
			Size:     int64(len(f.Data)),
			ModTime:  time.Unix(0, 0),
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return buf.Bytes(), nil
}

// ReadArchive reads the bundle archive at path. See ParseArchive.
func ReadArchive(path string) ([]File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read archive %q: %w", path, err)
	}
	defer f.Close()
	files, err := ParseArchive(f)
	if err != nil {
		return nil, fmt.Errorf("read archive %q: %w", path, err)
	}
	return files, nil
}

// LayoutError reports an archive whose bundle files are not at its top
// level: a directory was archived (tar -czf FILE DIR) rather than the
// files in it.
type LayoutError struct {
	// Entry is the entry's name in the archive.
	Entry string
	// Dir is true for a directory entry, false for a file in one.
	Dir bool
}

func (e *LayoutError) Error() string {
	if e.Dir {
		return fmt.Sprintf("entry %q: a directory (the bundle files must be at the top level of the archive)", e.Entry)
	}
	return fmt.Sprintf("entry %q: not at the top level of the archive", e.Entry)
}

// ParseArchive reads a bundle archive from r and returns its files, with
// the mode from Allowed. It refuses, naming the entry:
//
//   - a path that is absolute, holds "..", or is not at the top level
//     (a leading "./" is accepted, as GNU tar writes it);
//   - any entry that is not a regular file (symbolic and hard links,
//     devices, FIFOs); directories "." and "./" are skipped, and any
//     other directory, like a file under one, is a *LayoutError;
//   - a name not in Allowed, or the same name twice;
//   - more than MaxArchiveSize bytes in total, compressed or not;
//   - an archive missing any of Allowed's files.
func ParseArchive(r io.Reader) ([]File, error) {
	lr := &io.LimitedReader{R: r, N: MaxArchiveSize + 1}
	zr, err := gzip.NewReader(lr)
	if err != nil {
		return nil, fmt.Errorf("not a gzip-compressed tar archive: %w", err)
	}
	tr := tar.NewReader(zr)
	var files []File
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.N <= 0 {
				return nil, fmt.Errorf("archive larger than %d bytes", MaxArchiveSize)
			}
			return nil, fmt.Errorf("corrupt archive: %w", err)
		}
		name := hdr.Name
		clean, mode, skip, err := checkEntry(hdr, files)
		if err != nil {
			return nil, err
		}
		if skip {
			continue
		}
		total += hdr.Size
		if hdr.Size < 0 || total > MaxArchiveSize {
			return nil, fmt.Errorf("archive larger than %d bytes", MaxArchiveSize)
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size+1))
		if err != nil {
			if lr.N <= 0 {
				return nil, fmt.Errorf("archive larger than %d bytes", MaxArchiveSize)
			}
			return nil, fmt.Errorf("corrupt archive: entry %q: %w", name, err)
		}
		files = append(files, File{Name: clean, Data: data, Mode: mode})
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("archive larger than %d bytes", MaxArchiveSize)
	}
	for _, want := range append(slices.Clone(clientenv.BundleFiles), clientenv.MetaFile) {
		if !slices.ContainsFunc(files, func(f File) bool { return f.Name == want }) {
			return nil, fmt.Errorf("archive is missing %q", want)
		}
	}
	return files, nil
}

// checkEntry checks the header of one archive entry against ParseArchive's
// rules, given the files read before it, and returns its cleaned name and
// mode; skip is true for the "." directory, which is ignored.
func checkEntry(hdr *tar.Header, files []File) (clean string, mode fs.FileMode, skip bool, err error) {
	name := hdr.Name
	if strings.HasPrefix(name, "/") || strings.Contains(name, `\`) || filepath.IsAbs(name) {
		return "", 0, false, fmt.Errorf("entry %q: absolute path", name)
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", 0, false, fmt.Errorf("entry %q: path escapes the bundle directory", name)
	}
	clean = path.Clean(name)
	if hdr.Typeflag == tar.TypeDir && clean == "." {
		return "", 0, true, nil
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeDir:
		return "", 0, false, &LayoutError{Entry: name, Dir: true}
	case tar.TypeSymlink, tar.TypeLink:
		return "", 0, false, fmt.Errorf("entry %q: links are not allowed (points to %q)", name, hdr.Linkname)
	default:
		return "", 0, false, fmt.Errorf("entry %q: not a regular file (type %q)", name, hdr.Typeflag)
	}
	if strings.Contains(clean, "/") {
		return "", 0, false, &LayoutError{Entry: name}
	}
	mode, ok := Allowed[clean]
	if !ok {
		return "", 0, false, fmt.Errorf("entry %q: unexpected file (want %s)", name, allowedList())
	}
	for _, f := range files {
		if f.Name == clean {
			return "", 0, false, fmt.Errorf("entry %q: given twice", name)
		}
	}
	return clean, mode, false, nil
}

func allowedList() string {
	names := make([]string, 0, len(Allowed))
	for n := range Allowed {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Get returns the data of the file called name, or nil.
func Get(files []File, name string) []byte {
	for _, f := range files {
		if f.Name == name {
			return f.Data
		}
	}
	return nil
}
