package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestManAndCompletions(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run([]string{"man", dir}))
	for _, page := range []string{"dtls.1", "dtls-env.1", "dtls-import.1", "dtls-bundles.1", "dtls-certs.1", "dtls-use.1", "dtls-context-create.1", "dtls-context-export.1"} {
		data, err := os.ReadFile(filepath.Join(dir, page))
		require.NoError(t, err, page)
		assert.Contains(t, string(data), ".TH \"DTLS\"", page)
	}
	// The commands' old names, now aliases, keep their pages.
	for alias, page := range map[string]string{"dtls-ls.1": "dtls-bundles.1", "dtls-list.1": "dtls-certs.1", "dtls-default.1": "dtls-use.1"} {
		data, err := os.ReadFile(filepath.Join(dir, alias))
		require.NoError(t, err, alias)
		assert.Equal(t, ".so man1/"+page+"\n", string(data), alias)
	}
	env, err := os.ReadFile(filepath.Join(dir, "dtls-env.1"))
	require.NoError(t, err)
	assert.Contains(t, string(env), "\\fB--no-proxy\\fP")

	cdir := t.TempDir()
	require.NoError(t, run([]string{"completion", cdir}))
	for _, f := range []string{"dtls.bash", "dtls.zsh", "dtls.fish", "dtls.ps1"} {
		fi, err := os.Stat(filepath.Join(cdir, f))
		require.NoError(t, err, f)
		assert.NotZero(t, fi.Size(), f)
	}
	assert.EqualError(t, run([]string{"html", dir}), `unknown kind "html" (want man, completion or units)`)
}

// TestBuildAndInstall: the release build is static and carries the
// version, commit and date given by -ldflags; go install works.
func TestBuildAndInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds dtls")
	}
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(t.TempDir(), "dtls")
	pkg := "github.com/dtls-tool/dtls/cmd"
	build := exec.Command(goBin, "build", "-trimpath", "-ldflags",
		"-s -w -X "+pkg+".version=v9.8.7 -X "+pkg+".commit=abc123 -X "+pkg+".date=2026-01-02T03:04:05Z",
		"-o", out, "../dtls")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := build.CombinedOutput()
	require.NoError(t, err, string(b))
	v, err := exec.Command(out, "version").CombinedOutput()
	require.NoError(t, err, string(v))
	assert.Regexp(t, `^dtls v9\.8\.7 \(commit abc123, built 2026-01-02T03:04:05Z, go1\.\d+`, string(v))
	if f, err := exec.LookPath("file"); err == nil {
		info, err := exec.Command(f, out).CombinedOutput()
		require.NoError(t, err)
		assert.Contains(t, string(info), "statically linked")
	}

	gobin := t.TempDir()
	install := exec.Command(goBin, "install", "../dtls")
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	b, err = install.CombinedOutput()
	require.NoError(t, err, string(b))
	v, err = exec.Command(filepath.Join(gobin, "dtls"), "version").CombinedOutput()
	require.NoError(t, err, string(v))
	assert.True(t, strings.HasPrefix(string(v), "dtls "), string(v))
}
