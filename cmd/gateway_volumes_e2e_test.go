package cmd

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rwToolSource writes a file or prints one, in the volume tests'
// containers.
const rwToolSource = `package main

import (
	"fmt"
	"os"
)

func main() {
	switch os.Args[1] {
	case "write":
		if err := os.WriteFile(os.Args[2], []byte(os.Args[3]), 0o644); err != nil {
			fmt.Println("write:", err)
			os.Exit(1)
		}
	case "read":
		b, err := os.ReadFile(os.Args[2])
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(1)
		}
		fmt.Printf("content: %s\n", b)
	}
}
`

// TestGatewayVolumeOwnersAreTheVolumes: a volume's owner in the book is
// that volume's, not its name's. dockerd gives a name again to a volume
// made after the first is gone, and the gateway does not see everything
// that removes one (a prune, root on dockerd's own socket): a developer
// whose volume was removed so must not mount, read or remove a volume
// made later under its name by the host's admin. Nor may a create whose
// top-level Binds dockerd ignores reserve a name for later. And "Alice",
// another identity than alice to the policy, is not issued beside alice
// (the policy's unit tests show that such a name, in an older inventory,
// tags nothing of alice's). A developer's own volume still works from
// create to removal.
func TestGatewayVolumeOwnersAreTheVolumes(t *testing.T) {
	t.Parallel()
	h := newGatewayHost(t)
	h.issue(t, "root-admin", "admin")
	h.issue(t, "alice", "ci-runner")
	_, stderr, code := h.dtls(t, "issue-client", "Alice", "--role", "ci-runner", "--state-dir", h.State, "--out", filepath.Join(h.Bundles, "Alice"))
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, `"Alice" differs only in case from "alice"`)
	importImage(t, h.Daemon, "rw:1", map[string]string{"rw": buildStatic(t, "rw", rwToolSource)})
	host := func(args ...string) string {
		out, err := runDocker(t, h.docker, []string{"DOCKER_HOST=unix://" + h.Daemon.Socket}, args...)
		require.NoError(t, err, "host: docker %v: %s", args, out)
		return strings.TrimSpace(out)
	}
	refused := func(who string, args ...string) {
		t.Helper()
		out, err := h.as(t, who, args...)
		require.Error(t, err, "%s: docker %s: %s", who, strings.Join(args, " "), out)
		assert.Contains(t, out, "denied for "+who, "%s: docker %s: not the gateway's refusal", who, strings.Join(args, " "))
	}
	// The ci-runner role is in force once the policy is read.
	waitFor(t, 10*time.Second, "the policy's roles", func() bool {
		_, err := h.as(t, "alice", "volume", "create", "mine")
		return err == nil
	})

	// alice's own volume, from create to removal.
	out, err := h.as(t, "alice", "run", "--rm", "-v", "mine:/d", "rw:1", "/rw", "write", "/d/f", "hers")
	require.NoError(t, err, out)
	out, err = h.as(t, "alice", "run", "--rm", "-v", "mine:/d", "rw:1", "/rw", "read", "/d/f")
	require.NoError(t, err, out)
	assert.Contains(t, out, "content: hers")
	out, err = h.as(t, "alice", "volume", "rm", "mine")
	require.NoError(t, err, out)

	// Removed by a prune through the gateway, or by root on dockerd's
	// socket, then made again by root with a secret in it.
	for _, removal := range [][]string{nil, {"volume", "rm", "pgdata"}} {
		out, err := h.as(t, "alice", "volume", "create", "pgdata")
		require.NoError(t, err, out)
		if removal == nil {
			out, err = h.as(t, "root-admin", "volume", "prune", "-f")
			require.NoError(t, err, out)
		} else {
			host(removal...)
		}
		host("volume", "create", "pgdata")
		host("run", "--rm", "-v", "pgdata:/d", "rw:1", "/rw", "write", "/d/secret", "TOPSECRET")
		refused("alice", "run", "--rm", "-v", "pgdata:/d", "rw:1", "/rw", "read", "/d/secret")
		refused("alice", "volume", "inspect", "pgdata")
		refused("alice", "volume", "rm", "pgdata")
		assert.Equal(t, "pgdata", host("volume", "ls", "-q", "--filter", "name=^pgdata$"), "root's volume is still there")
		host("volume", "rm", "pgdata")
	}

	// A create whose top-level Binds dockerd ignores (a HostConfig is
	// given) makes no volume, and reserves no name.
	cl := rawClient(t, filepath.Join(h.Bundles, "alice"))
	base := fmt.Sprintf("https://127.0.0.1:%d/v1.41", h.Port)
	code, body := postJSON(t, cl, base+"/containers/create?name=claimer", `{"Image":"rw:1","Cmd":["/rw","read","/x"],"HostConfig":{},"Binds":["claimed:/data"]}`)
	t.Logf("the create with a top-level Binds: %d %s", code, body)
	assert.Empty(t, host("volume", "ls", "-q", "--filter", "name=^claimed$"), "dockerd made no volume")
	host("volume", "create", "claimed")
	refused("alice", "volume", "inspect", "claimed")
	refused("alice", "run", "--rm", "-v", "claimed:/d", "rw:1", "/rw", "read", "/d/x")

	// alice tags in her namespace.
	ctx := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM rw:1\nLABEL by=alice\n"), 0o644))
	out, err = h.as(t, "alice", "build", "-t", "alice/app:1", ctx)
	require.NoError(t, err, out)
	assert.Equal(t, "alice", host("image", "inspect", "-f", `{{index .Config.Labels "by"}}`, "alice/app:1"))
}

// postJSON sends body to url as JSON with client and returns the answer.
func postJSON(t *testing.T, client *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, strings.TrimSpace(string(b))
}
