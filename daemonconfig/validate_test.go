package daemonconfig

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestValidateRealDockerd runs the dockerd installed here. Debian's docker.io
// 20.10 has no --validate; a newer one must accept a merged file.
func TestValidateRealDockerd(t *testing.T) {
	const dockerd = "/usr/sbin/dockerd"
	if _, err := os.Stat(dockerd); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (apt-get install -y docker.io): %v", dockerd, err)
		}
		t.Skipf("%s not installed: %v", dockerd, err)
	}
	out, err := exec.Command(dockerd, "--version").Output()
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "daemon.json")
	merged, _, err := Merge(nil, testSettings)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, merged, 0o644))

	err = Validate(context.Background(), dockerd, path)
	if strings.HasPrefix(string(out), "Docker version 20.") {
		require.ErrorIs(t, err, ErrValidateUnsupported)
		assert.EqualError(t, err, `validate daemon config "`+path+`" with /usr/sbin/dockerd (version 20): dockerd has no --validate flag (it needs Docker 23.0 or later)`)
		return
	}
	assert.NoError(t, err, "dockerd %s", out)
}

// fakeDockerd writes a shell script standing in for dockerd.
func fakeDockerd(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dockerd")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755))
	return p
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"debug": true}`), 0o644))
	require.NoError(t, os.WriteFile(bad, []byte(`{"bogus": true}`), 0o644))

	// Like dockerd 23+: --validate in --help, the file's error on stderr.
	modern := fakeDockerd(t, `
case "$1" in
--help) printf 'Options:\n  -D, --debug       Enable debug mode\n      --validate    Validate daemon configuration and exit\n'; exit 0;;
--validate)
	if grep -q bogus "$3"; then
		echo "unable to configure the Docker daemon with file $3: the following directives don't match any configuration option: bogus" >&2
		exit 1
	fi
	echo "configuration OK" >&2; exit 0;;
esac
exit 2
`)
	assert.NoError(t, Validate(context.Background(), modern, good))
	err := Validate(context.Background(), modern, bad)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrValidateUnsupported)
	assert.EqualError(t, err, `validate daemon config "`+bad+`" with `+modern+`: unable to configure the Docker daemon with file `+bad+
		`: the following directives don't match any configuration option: bogus: exit status 1`)

	// Like dockerd 20.10: no such flag.
	old := fakeDockerd(t, `
case "$1" in
--help) printf 'Options:\n  -D, --debug       Enable debug mode\n      --userns-remap string   User/Group setting for user namespaces\n'; exit 0;;
esac
echo "Status: unknown flag: $1" >&2; exit 125
`)
	assert.ErrorIs(t, Validate(context.Background(), old, good), ErrValidateUnsupported)

	missing := filepath.Join(dir, "no-dockerd")
	err = Validate(context.Background(), missing, good)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrValidateUnsupported)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// The version is read from dockerd's build information, not by running it.
func TestDockerdVersionFromBuildInfo(t *testing.T) {
	const dockerd = "/usr/sbin/dockerd"
	if _, err := os.Stat(dockerd); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (apt-get install -y docker.io): %v", dockerd, err)
		}
		t.Skipf("%s not installed: %v", dockerd, err)
	}
	out, err := exec.Command(dockerd, "--version").Output()
	require.NoError(t, err)
	m := regexp.MustCompile(`Docker version (\d+)\.`).FindStringSubmatch(string(out))
	require.NotNil(t, m, "dockerd --version: %s", out)
	major, ok := dockerdVersion(dockerd)
	require.True(t, ok, "no version in the build information of %s", dockerd)
	assert.Equal(t, m[1], strconv.Itoa(major))

	// A script has no Go build information: unknown, so Validate runs it.
	_, ok = dockerdVersion(fakeDockerd(t, "exit 0\n"))
	assert.False(t, ok)
}
