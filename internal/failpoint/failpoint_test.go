package failpoint_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/internal/fixture"
)

// TestNotInProductionBinary: the dtls binary built without the
// dtlsfailpoints tag has no fail points and no test harness in it.
func TestNotInProductionBinary(t *testing.T) {
	deps, err := exec.Command("go", "list", "-deps", "github.com/dtls-tool/dtls/cmd/dtls").Output()
	require.NoError(t, err)
	for _, test := range []string{"internal/sandbox", "internal/crashtest", "testing", "testify"} {
		assert.NotContains(t, string(deps), test, "the production binary links %s", test)
	}
	bin := filepath.Join(t.TempDir(), "dtls")
	out, err := fixture.GoBuild(bin, "github.com/dtls-tool/dtls/cmd/dtls").CombinedOutput()
	require.NoError(t, err, string(out))
	b, err := os.ReadFile(bin)
	require.NoError(t, err)
	assert.False(t, bytes.Contains(b, []byte("injected crash at")), "fail points are compiled into the production binary")

	tagged := filepath.Join(t.TempDir(), "dtls-failpoints")
	out, err = fixture.GoBuild(tagged, "github.com/dtls-tool/dtls/cmd/dtls", "-tags", "dtlsfailpoints").CombinedOutput()
	require.NoError(t, err, string(out))
	b, err = os.ReadFile(tagged)
	require.NoError(t, err)
	assert.True(t, bytes.Contains(b, []byte("injected crash at")), "the check above would not see fail points: %s", strings.TrimSpace(string(out)))
}
