package cmd

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/dtls-tool/dtls/internal/pgsandbox"
	"github.com/dtls-tool/dtls/pki"
)

func TestMain(m *testing.M) {
	testscript.Main(testBinary{m}, map[string]func(){
		"dtls":                  func() { os.Exit(Main()) },
		containerSocketCallName: containerSocketCallMain,
	})
}

// testBinary runs the package's tests when the test binary is not run as
// one of testscript's commands: with one PostgreSQL server for them all
// (a database per test), and more tests at once than there are CPUs
// unless -parallel says how many, since the tests that start dockerds or
// servers spend most of their time waiting for them.
type testBinary struct{ m *testing.M }

func (b testBinary) Run() int {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(2*runtime.GOMAXPROCS(0)))
	}
	code := pgsandbox.RunShared(b.m)
	if staticDir != "" {
		os.RemoveAll(staticDir)
	}
	return code
}

// TestScripts runs the command-line scenarios in testdata/script.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script", Setup: scriptSetup, Cmds: scriptCmds})
}

// scriptSetup points HOME, DOCKER_CONFIG and every path flag's environment
// variable into the script's work directory, so no script can reach
// /etc/docker, the host's systemd units or the real ~/.docker, and puts
// the real unit file of Debian's docker.io there for the systemd script.
func scriptSetup(env *testscript.Env) error {
	w := env.WorkDir
	env.Setenv("HOME", w+"/home")
	env.Setenv("DOCKER_CONFIG", w+"/home/.docker")
	env.Setenv("DTLS_STATE_DIR", w+"/state")
	env.Setenv("DTLS_CERTS_DIR", w+"/certs")
	env.Setenv("DTLS_DAEMON_JSON", w+"/etc/daemon.json")
	env.Setenv("DTLS_SYSTEMD_DIR", w+"/systemd")
	env.Setenv("DTLS_AUDIT_LOG", w+"/log/authz.log")
	env.Setenv("DTLS_AUDITD_RULES_DIR", w+"/audit/rules.d")
	env.Setenv("SHELL", "/bin/bash")
	if err := os.MkdirAll(w+"/systemd", 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile("../daemonconfig/testdata/docker.service.debian")
	if err != nil {
		return err
	}
	return os.WriteFile(w+"/debian-docker.service", b, 0o644)
}

// scriptCmds are the custom commands of every script.
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"perm":        cmdPerm,
	"checkcert":   cmdCheckCert,
	"chown":       cmdChown,
	"mkarchive":   cmdMkArchive,
	"evilarchive": cmdEvilArchive,
	"readlink":    cmdReadlink,
	"dtlsexit":    cmdDtlsExit,
	"waitfor":     cmdWaitFor,
}

// waitfor PATH: PATH exists within 10 seconds (a socket a background
// command makes), polled.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 || neg {
		ts.Fatalf("usage: waitfor PATH")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		} else if time.Now().After(deadline) {
			ts.Fatalf("%s: %v after 10s", args[0], err)
		}
	}
}

// perm FILE MODE: the file's permission bits are exactly MODE (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := uint64(fi.Mode().Perm())
	if (got == want) == neg {
		ts.Fatalf("%s has mode %04o, want %s%04o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// checkcert CERT server|client CA [HOST...]: CERT verifies with CA for that
// purpose now, and covers every HOST.
func cmdCheckCert(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: checkcert CERT server|client CA [HOST...]")
	}
	cert, err := pki.ParseCertificate([]byte(ts.ReadFile(args[0])))
	ts.Check(err)
	roots, err := pki.ParseCertificates([]byte(ts.ReadFile(args[2])))
	ts.Check(err)
	err = pki.Verify(cert, roots, pki.Kind(args[1]), time.Now())
	if err == nil {
		if m := pki.Missing(cert, args[3:]); len(m) > 0 {
			err = fmt.Errorf("does not cover %v", m)
		}
	}
	if neg && err == nil {
		ts.Fatalf("%s verifies as %s, want it refused", args[0], args[1])
	}
	if !neg && err != nil {
		ts.Fatalf("%s: %v", args[0], err)
	}
}

// chown UID PATH: hand a path to another user (for the foreign-owned
// state directory case). Needs root, which the dockerd tests need anyway.
func cmdChown(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: chown UID PATH")
	}
	uid, err := strconv.Atoi(args[0])
	ts.Check(err)
	ts.Check(os.Chown(filepath.Clean(ts.MkAbs(args[1])), uid, uid))
}
