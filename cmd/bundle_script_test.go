package cmd

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/dtls-tool/dtls/internal/fixture"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
)

// TestBundleScripts runs the developer-side scenarios in testdata/bundle:
// archives, import, ls, use, env NAME, contexts. HOME and DTLS_HOME point
// into the work directory, so no script touches the real ~/.docker.
func TestBundleScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/bundle", Setup: scriptSetup, Cmds: scriptCmds})
}

// mkarchive DIR FILE: the archive 'issue-client --archive' writes, made
// from the bundle directory DIR with fixture.WriteArchive.
func cmdMkArchive(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mkarchive DIR FILE")
	}
	files, err := fixture.ReadBundleDir(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Check(fixture.WriteArchive(ts.MkAbs(args[1]), files))
}

// evilarchive KIND DIR FILE: an archive of the bundle DIR with one bad
// entry: dotdot, absolute, symlink, hardlink, subdir, unexpected, big,
// missing; or dirtar, the archive 'tar -czf FILE DIR' makes (the
// directory, then its files under it).
func cmdEvilArchive(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: evilarchive KIND DIR FILE")
	}
	files, err := fixture.ReadBundleDir(ts.MkAbs(args[1]))
	ts.Check(err)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(h *tar.Header, data []byte) {
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		h.Size = int64(len(data))
		h.Mode = 0o600
		ts.Check(tw.WriteHeader(h))
		_, err := tw.Write(data)
		ts.Check(err)
	}
	kind := args[0]
	if kind == "dirtar" {
		add(&tar.Header{Name: "dtls-alice/", Typeflag: tar.TypeDir}, nil)
		for i := range files {
			files[i].Name = "dtls-alice/" + files[i].Name
		}
	}
	for _, f := range files {
		if kind == "missing" && f.Name == "key.pem" {
			continue
		}
		if kind == "big" && f.Name == "ca.pem" {
			// A real name, a gzip bomb: 2 MiB that compress to kilobytes.
			f.Data = bytes.Repeat([]byte("A"), 2*bundle.MaxArchiveSize)
		}
		add(&tar.Header{Name: f.Name}, f.Data)
	}
	switch kind {
	case "dotdot":
		add(&tar.Header{Name: "../../evil.sh"}, []byte("x"))
	case "absolute":
		add(&tar.Header{Name: "/tmp/evil.sh"}, []byte("x"))
	case "symlink":
		add(&tar.Header{Name: "link.pem", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, nil)
	case "hardlink":
		add(&tar.Header{Name: "link.pem", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}, nil)
	case "subdir":
		add(&tar.Header{Name: "sub/ca.pem"}, []byte("x"))
	case "unexpected":
		add(&tar.Header{Name: "run.sh"}, []byte("x"))
	case "big", "missing", "dirtar":
	default:
		ts.Fatalf("unknown kind %q", kind)
	}
	ts.Check(tw.Close())
	ts.Check(zw.Close())
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), buf.Bytes(), 0o600))
}

// readlink LINK TARGET: LINK is a symbolic link whose text is TARGET.
func cmdReadlink(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: readlink LINK TARGET")
	}
	got, err := os.Readlink(filepath.Clean(ts.MkAbs(args[0])))
	ts.Check(err)
	if (got == args[1]) == neg {
		ts.Fatalf("%s points to %q, want %s%q", args[0], got, map[bool]string{true: "not ", false: ""}[neg], args[1])
	}
}

// dtlsexit CODE ARGS...: dtls ARGS exits with CODE (run in-process, with
// the script's environment); its stdout and stderr become the script's.
func cmdDtlsExit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: dtlsexit CODE ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	var out, errOut bytes.Buffer
	code := Run(args[1:], IO{
		In: strings.NewReader(""), Out: &out, ErrOut: &errOut, Now: time.Now,
		Getenv: ts.Getenv,
	})
	ts.Stdout().Write(out.Bytes())
	ts.Stderr().Write(errOut.Bytes())
	if code != want {
		ts.Fatalf("dtls %s: exit code %d, want %d\n%s", strings.Join(args[1:], " "), code, want, errOut.String())
	}
}
