package cmd

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every subcommand is in the tree and in the order list exactly once.
func TestCommandTable(t *testing.T) {
	if len(commands) != len(commandOrder) {
		t.Fatalf("%d builders, %d names in order", len(commands), len(commandOrder))
	}
	root := NewRootCommand()
	aliases := map[string]string{}
	for _, name := range commandOrder {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("command %q: builder makes %q (%v)", name, c.Name(), err)
			continue
		}
		for _, a := range c.Aliases {
			aliases[a] = name
		}
		// Every command but version is in a group of 'dtls --help'.
		if c.GroupID == "" && name != "version" {
			t.Errorf("command %q is in no group of dtls --help", name)
		}
	}
	// Run's table of aliases is the commands' own.
	assert.Equal(t, aliases, commandAliases)
	for alias, name := range commandAliases {
		got, ok := commandFor([]string{alias, "--help"})
		assert.True(t, ok, alias)
		assert.Equal(t, name, got, alias)
	}
}

// TestHelpGroupsAndVersion: 'dtls --help' says which commands are for the
// Docker host and which for a laptop; the names say what they list, and
// what users typed before still works; dtls --version prints what dtls
// version does.
func TestHelpGroupsAndVersion(t *testing.T) {
	out, _, code := dtls(t, time.Now(), "--help")
	require.Equal(t, 0, code)
	host := strings.Index(out, "Docker host commands")
	laptop := strings.Index(out, "Laptop commands")
	require.True(t, host >= 0 && laptop > host, out)
	assert.Regexp(t, `\n  certs +List every certificate this host's CA issued`, out[host:laptop])
	assert.Regexp(t, `\n  bundles +List the client bundles on this machine`, out[laptop:])
	assert.Regexp(t, `\n  env +Print the shell commands`, out[laptop:])
	assert.NotContains(t, out[laptop:], "  init ")

	for _, args := range [][]string{{"list", "--help"}, {"ls", "--help"}, {"help", "list"}} {
		out, stderr, code := dtls(t, time.Now(), args...)
		assert.Equal(t, 0, code, "%v: %s", args, stderr)
		assert.Contains(t, out, "Aliases:", args)
	}

	out, _, code = dtls(t, time.Now(), "--version")
	require.Equal(t, 0, code)
	v, _, _ := dtls(t, time.Now(), "version")
	assert.Equal(t, v, out)
	assert.Regexp(t, `^dtls \S+ \(commit \S+, built \S+, go`, out)
}

// TestDeprecatedEnvHost: env's --host is --docker-host now (one meaning
// per flag name: --host is a certificate's host everywhere else). The old
// spelling works, and its notice goes to stderr: stdout is what eval runs.
func TestDeprecatedEnvHost(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	_, stderr, code := dtls(t, time.Now(), "init", "--state-dir", state, "--certs-dir", filepath.Join(dir, "certs"),
		"--daemon-json", filepath.Join(dir, "daemon.json"), "--systemd-dir", dir, "--host", "localhost")
	require.Equal(t, 0, code, stderr)
	bundle := filepath.Join(dir, "alice")
	_, stderr, code = dtls(t, time.Now(), "issue-client", "alice", "--state-dir", state, "--out", bundle)
	require.Equal(t, 0, code, stderr)

	want := "export DOCKER_HOST='tcp://tunnel:12376'\nexport DOCKER_TLS_VERIFY='1'\nexport DOCKER_CERT_PATH='" + bundle + "'\n" +
		"# Run this command to configure your shell:\n# eval \"$(dtls env --shell bash --cert-path " + bundle + " --docker-host tcp://tunnel:12376)\"\n"
	out, stderr, code := dtls(t, time.Now(), "env", "--shell", "bash", "--cert-path", bundle, "--docker-host", "tcp://tunnel:12376")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, want, out)
	assert.Empty(t, stderr)

	out, stderr, code = dtls(t, time.Now(), "env", "--shell", "bash", "--cert-path", bundle, "--host", "tcp://tunnel:12376")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, want, out, "stdout must hold only what eval runs")
	assert.Equal(t, "Flag --host has been deprecated, use --docker-host\n", stderr)

	_, stderr, code = dtls(t, time.Now(), "env", "--cert-path", bundle, "--host", "tcp://a:1", "--docker-host", "tcp://b:2")
	assert.Equal(t, exitUsage, code, stderr)
	help, _, _ := dtls(t, time.Now(), "env", "--help")
	assert.Contains(t, help, "--docker-host")
	assert.NotContains(t, help, "--host ")
}

// Usage errors exit 2, whichever layer finds them: pflag, cobra's argument,
// required-flag and flag-group checks, or dtls's own validation.
func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"nosuch"},
		{"init", "--no-such-flag"},
		{"env", "--unset", "--host", "tcp://a:1"},
		{"env", "--unset", "--docker-host", "tcp://a:1"},
		{"audit", "-o", "yaml"},
		{"env", "--shell", "elvish"},
		{"issue-client"},
		{"issue-client", "../x"},
		{"issue-client", "a", "--passphrase-file", "f", "--passphrase-env", "E"},
		{"init", "--listen", "0.0.0.0:2376"},
		{"version", "extra"},
	} {
		_, stderr, code := runWithEnv(t, time.Now(), nil, args...)
		if code != exitUsage {
			t.Errorf("dtls %v: exit %d, want %d; stderr: %s", args, code, exitUsage, stderr)
		}
	}
}

// Every flag that takes one of a fixed set of values completes them.
func TestFlagValuesComplete(t *testing.T) {
	enumerated := map[string]bool{"key-type": true, "output": true, "reason": true, "shell": true, "format": true}
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if !enumerated[f.Name] {
				return
			}
			seen++
			args := append(strings.Fields(strings.TrimPrefix(c.CommandPath(), "dtls")), "--"+f.Name, "")
			out, _, code := runWithEnv(t, time.Now(), nil, append([]string{cobra.ShellCompRequestCmd}, args...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 0 || len(lines) < 3 {
				t.Errorf("dtls %s --%s: completes %q (exit %d), want its values", c.CommandPath(), f.Name, out, code)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand())
	if seen < 10 {
		t.Fatalf("found only %d enumerated flags: the walk is broken", seen)
	}
}

// Every flag's default, as --help shows it, is the value the command
// starts with: pflag records the default when the flag is defined, so a
// default set afterwards shows as another ("--expiry-warning duration ...
// (default 0d)" while the audit used 30 days).
func TestFlagDefaultsMatchValues(t *testing.T) {
	walkFlags(NewRootCommand(), func(c *cobra.Command, f *pflag.Flag) {
		if f.DefValue != f.Value.String() {
			t.Errorf("%s --%s: --help says default %q, the command starts with %q", c.CommandPath(), f.Name, f.DefValue, f.Value.String())
		}
	})
}

// -o is --output on every command that has an output format, as in the
// Docker CLI and kubectl.
func TestOutputFlagShorthand(t *testing.T) {
	seen := 0
	walkFlags(NewRootCommand(), func(c *cobra.Command, f *pflag.Flag) {
		if f.Name != "output" {
			return
		}
		seen++
		if f.Shorthand != "o" {
			t.Errorf("%s --output has no -o", c.CommandPath())
		}
	})
	if seen < 4 {
		t.Fatalf("found only %d --output flags: the walk is broken", seen)
	}
}

// walkFlags calls fn for every local flag of every command under c.
func walkFlags(c *cobra.Command, fn func(*cobra.Command, *pflag.Flag)) {
	c.LocalFlags().VisitAll(func(f *pflag.Flag) { fn(c, f) })
	for _, sub := range c.Commands() {
		walkFlags(sub, fn)
	}
}

// TestInitWithoutRootHintsSudo: init run by an ordinary user fails on the
// state directory and the daemon's files, which belong to root: the error
// says so, and the hint repeats the command with sudo.
func TestInitWithoutRootHintsSudo(t *testing.T) {
	dir := sharedTempDir(t)
	etc := filepath.Join(dir, "etc")
	require.NoError(t, os.Mkdir(etc, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(etc, "daemon.json"), []byte("{}\n"), 0o644))
	args := []string{"init", "--state-dir", filepath.Join(dir, "state"), "--certs-dir", filepath.Join(dir, "certs"),
		"--daemon-json", filepath.Join(etc, "daemon.json"), "--systemd-dir", etc, "--host", "localhost"}
	var stderr string
	var code int
	if os.Geteuid() == 0 {
		_, stderr, code = dtlsAsNobody(t, dir, nil, args...)
	} else {
		_, stderr, code = runWithEnv(t, time.Now(), nil, args...)
	}
	require.Equal(t, exitFailure, code, stderr)
	assert.Contains(t, stderr, "permission denied")
	assert.Contains(t, stderr, "\ndtls: hint: run it as root: sudo dtls init --certs-dir "+filepath.Join(dir, "certs")+" --daemon-json "+
		filepath.Join(etc, "daemon.json")+" --host localhost --state-dir "+filepath.Join(dir, "state")+" --systemd-dir "+etc+"\n")
	_, err := os.Stat(filepath.Join(dir, "state"))
	assert.True(t, os.IsNotExist(err), "init without root left %s", filepath.Join(dir, "state"))
}

// pathEnv are the variables README's "Environment" names, by the flag
// they stand in for.
var pathEnv = map[string]string{
	"state-dir": "DTLS_STATE_DIR", "certs-dir": "DTLS_CERTS_DIR", "daemon-json": "DTLS_DAEMON_JSON",
	"systemd-dir": "DTLS_SYSTEMD_DIR", "out": "DTLS_OUT",
}

// notFromEnv are the flags of those names that do not read the variable,
// as README says: renew --out is one bundle's new directory, where
// $DTLS_OUT is where issue-client writes bundles; sessions export --out
// is one file.
var notFromEnv = map[string]bool{"dtls renew --out": true, "dtls sessions export --out": true}

// TestEnvDefaults: every flag whose usage says "(env X)" takes its default
// from X, and every flag README says reads a variable does.
func TestEnvDefaults(t *testing.T) {
	envOf := regexp.MustCompile(`\(env ([A-Z_]+)\)`)
	seen := 0
	walkFlags(NewRootCommand(), func(c *cobra.Command, f *pflag.Flag) {
		m := envOf.FindStringSubmatch(f.Usage)
		if want, ok := pathEnv[f.Name]; ok && !notFromEnv[c.CommandPath()+" --"+f.Name] {
			if m == nil || m[1] != want {
				t.Errorf("%s --%s: does not read $%s (usage %q)", c.CommandPath(), f.Name, want, f.Usage)
			}
		}
		if m == nil {
			return
		}
		seen++
		v := "/from/env/" + m[1]
		root := newRootCmd(IO{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard, Now: time.Now,
			Getenv: func(k string) string {
				if k == m[1] {
					return v
				}
				return ""
			}})
		cc, _, err := root.Find(strings.Fields(strings.TrimPrefix(c.CommandPath(), "dtls")))
		require.NoError(t, err)
		ff := cc.Flags().Lookup(f.Name)
		require.NotNil(t, ff, "%s --%s", c.CommandPath(), f.Name)
		if ff.DefValue != v {
			t.Errorf("%s --%s: with %s=%s the default is %q", c.CommandPath(), f.Name, m[1], v, ff.DefValue)
		}
	})
	if seen < 15 {
		t.Fatalf("found only %d flags with (env X): the walk is broken", seen)
	}
}
