package daemonconfig

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseDockerdFlags: the command line read as dockerd's pflag reads it,
// short flags combined.
func TestParseDockerdFlags(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		want    []DockerdFlag
	}{
		{"dockerd -DH fd://", []DockerdFlag{{"debug", "", false}, {"host", "fd://", true}}},
		{"dockerd -D -H fd://", []DockerdFlag{{"debug", "", false}, {"host", "fd://", true}}},
		{"dockerd -Hfd://", []DockerdFlag{{"host", "fd://", true}}},
		{"dockerd -H=fd://", []DockerdFlag{{"host", "fd://", true}}},
		{"dockerd -DHfd://", []DockerdFlag{{"debug", "", false}, {"host", "fd://", true}}},
		{"dockerd -DH=fd://", []DockerdFlag{{"debug", "", false}, {"host", "fd://", true}}},
		{"dockerd --host=fd://", []DockerdFlag{{"host", "fd://", true}}},
		{"dockerd --host fd://", []DockerdFlag{{"host", "fd://", true}}},
		{"dockerd -H fd:// -H tcp://0.0.0.0:2376", []DockerdFlag{{"host", "fd://", true}, {"host", "tcp://0.0.0.0:2376", true}}},
		// -l takes a value: "H" is the log level, not a host flag.
		{"dockerd -lH", []DockerdFlag{{"log-level", "H", true}}},
		{"dockerd -D=false --tls --tlscert /c.pem", []DockerdFlag{{"debug", "false", true}, {"tls", "", false}, {"tlscert", "/c.pem", true}}},
		// A flag with a value takes the next word whatever it is.
		{"dockerd --log-level -H", []DockerdFlag{{"log-level", "-H", true}}},
		// An unknown flag: a value only when the next word is not a flag.
		{"dockerd --new-bool -H fd://", []DockerdFlag{{"new-bool", "", false}, {"host", "fd://", true}}},
		{"dockerd --new-opt x -H fd://", []DockerdFlag{{"new-opt", "x", true}, {"host", "fd://", true}}},
		{"dockerd -- -H fd://", nil},
		{"dockerd $DOCKER_OPTS", nil},
		{`dockerd -H "unix:///a b.sock"`, []DockerdFlag{{"host", "unix:///a b.sock", true}}},
	} {
		got := ParseDockerdFlags(tc.cmdline)
		if tc.want == nil {
			assert.Empty(t, got, tc.cmdline)
			continue
		}
		assert.Equal(t, tc.want, got, tc.cmdline)
	}
}

// TestSplitHostsCombined: the host flags come out and the other flags
// stay, including the boolean letters combined with -H.
func TestSplitHostsCombined(t *testing.T) {
	for _, tc := range []struct {
		cmdline, args string
		hosts         []string
	}{
		{"/usr/bin/dockerd -DH fd://", "/usr/bin/dockerd -D", []string{"fd://"}},
		{"/usr/bin/dockerd -D -H fd://", "/usr/bin/dockerd -D", []string{"fd://"}},
		{"/usr/bin/dockerd -Hfd://", "/usr/bin/dockerd", []string{"fd://"}},
		{"/usr/bin/dockerd -DHfd:// --containerd=/c.sock", "/usr/bin/dockerd -D --containerd=/c.sock", []string{"fd://"}},
		{"/usr/bin/dockerd --host=fd://", "/usr/bin/dockerd", []string{"fd://"}},
		{"/usr/bin/dockerd -H fd:// -H tcp://0.0.0.0:2376", "/usr/bin/dockerd", []string{"fd://", "tcp://0.0.0.0:2376"}},
		{"/usr/bin/dockerd -lH", "/usr/bin/dockerd -lH", nil},
		{"/usr/bin/dockerd -l debug -DH fd:// $DOCKER_OPTS", "/usr/bin/dockerd -l debug -D $DOCKER_OPTS", []string{"fd://"}},
	} {
		hosts, args := splitHosts(tc.cmdline)
		assert.Equal(t, tc.hosts, hosts, tc.cmdline)
		assert.Equal(t, tc.args, args, tc.cmdline)
	}
}

// TestFindUnitCombinedShortFlags: a unit whose ExecStart combines -D and -H
// needs the drop-in, and the drop-in keeps -D.
func TestFindUnitCombinedShortFlags(t *testing.T) {
	for _, execStart := range []string{"/usr/bin/dockerd -DH fd://", "/usr/bin/dockerd -D -H fd://", "/usr/bin/dockerd -D -Hfd://", "/usr/bin/dockerd -D --host=fd://"} {
		lib, _ := unitDirs(t)
		putFile(t, filepath.Join(lib, "docker.service"), "[Service]\nExecStart="+execStart+"\n")
		u, err := FindUnit([]string{lib})
		require.NoError(t, err)
		assert.Equal(t, []string{"fd://"}, u.Hosts, execStart)
		assert.True(t, u.NeedsDropIn(), execStart)
		assert.Contains(t, string(u.DropIn()), "\nExecStart=\nExecStart=/usr/bin/dockerd -D\n", execStart)
	}
}
