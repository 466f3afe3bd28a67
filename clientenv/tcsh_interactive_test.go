package clientenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTcshInteractive feeds the output to an interactive tcsh (-i), where
// history substitution is on and "#" starts no comment: a "!" in a value
// must survive, and no line of the output may run as a command.
func TestTcshInteractive(t *testing.T) {
	needShell(t, "tcsh")
	value := "/tmp/a!b!!c!$ o'brien/$HOME/`x`/#h"
	b := &Bundle{Dir: value, Meta: Meta{DockerHost: "tcp://h!:2376"}}
	var set bytes.Buffer
	require.NoError(t, WriteSet(&set, Tcsh, Vars(b, ""), UsageHint(Tcsh, "dtls env")))
	file := filepath.Join(t.TempDir(), "set")
	require.NoError(t, os.WriteFile(file, set.Bytes(), 0o600))
	cmd := exec.Command("tcsh", "-f", "-i")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=C.UTF-8"}
	cmd.Stdin = strings.NewReader("eval \"`cat " + file + "`\"\nprintenv DOCKER_CERT_PATH\nprintenv DOCKER_HOST\nexit\n")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), " "+value+"\n", "input:\n%s", set.String())
	assert.Contains(t, string(out), "\ntcp://h!:2376\n")
	assert.NotContains(t, string(out), "not found")
	assert.NotContains(t, string(out), "Event not found")
}
