package cmd

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAgentExamples: the service definitions of examples/agent run 'dtls
// agent' with flags it takes, so that they do not drift from the command.
func TestAgentExamples(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile("../examples/agent/" + name)
		require.NoError(t, err)
		return string(b)
	}
	var cases [][]string
	unit := read("dtls-agent.service")
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindStringSubmatch(unit)
	require.NotNil(t, m, "dtls-agent.service has an ExecStart")
	assert.True(t, strings.HasSuffix(m[1], "/dtls"), m[1])
	cases = append(cases, strings.Fields(m[2]))
	assert.Contains(t, unit, "RestartPreventExitStatus=1", "exit 1 is every bundle refused: no restart")
	assert.Regexp(t, `(?m)^Restart=(on-failure|always)$`, unit, "the agent is restarted")
	assert.Regexp(t, `(?m)^RestartSec=\S+$`, unit)

	plist := read("io.github.dtls-tool.agent.plist")
	arr := regexp.MustCompile(`(?s)<key>ProgramArguments</key>\s*<array>(.*?)</array>`).FindStringSubmatch(plist)
	require.NotNil(t, arr, "the plist has ProgramArguments")
	var args []string
	for _, s := range regexp.MustCompile(`<string>([^<]*)</string>`).FindAllStringSubmatch(arr[1], -1) {
		args = append(args, s[1])
	}
	require.NotEmpty(t, args)
	assert.True(t, strings.HasSuffix(args[0], "/dtls"), args[0])
	cases = append(cases, args[1:])
	assert.Regexp(t, `(?s)<key>KeepAlive</key>\s*<dict>\s*<key>Crashed</key>\s*<true/>`, plist, "a crashed run is started again")
	assert.Regexp(t, `<key>ThrottleInterval</key>\s*<integer>[1-9][0-9]*</integer>`, plist)
	assert.Regexp(t, `<key>StartInterval</key>\s*<integer>[1-9][0-9]*</integer>`, plist, "and it runs again every interval")

	ps := read("dtls-agent-task.ps1")
	assert.Regexp(t, `-RestartCount [1-9]`, ps, "a failed run is started again")
	assert.Regexp(t, `-RestartInterval \(New-TimeSpan`, ps)
	pm := regexp.MustCompile(`-Argument '([^']*)'`).FindStringSubmatch(ps)
	require.NotNil(t, pm, "the task runs dtls with -Argument")
	cases = append(cases, strings.Fields(pm[1]))

	for _, args := range cases {
		root := NewRootCommand()
		c, rest, err := root.Find(args)
		require.NoError(t, err, "%v", args)
		assert.Equal(t, "agent", c.Name(), "%v", args)
		assert.NoError(t, c.ParseFlags(rest), "%v", args)
	}
}

// TestFleetHostExamples: the fleet host's renewal unit runs 'dtls renew'
// with flags it takes, and its timer spreads the hosts over the day.
func TestFleetHostExamples(t *testing.T) {
	unit, err := os.ReadFile("../examples/fleet-host/dtls-renew.service")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindStringSubmatch(string(unit))
	require.NotNil(t, m, "dtls-renew.service has an ExecStart")
	assert.True(t, strings.HasSuffix(m[1], "/dtls"), m[1])
	root := NewRootCommand()
	c, rest, err := root.Find(strings.Fields(m[2]))
	require.NoError(t, err)
	assert.Equal(t, "renew", c.Name())
	require.NoError(t, c.ParseFlags(rest))
	assert.Equal(t, "720h0m0s", c.Flags().Lookup("expiring").Value.String())
	assert.Equal(t, "true", c.Flags().Lookup("restart").Value.String())
	timer, err := os.ReadFile("../examples/fleet-host/dtls-renew.timer")
	require.NoError(t, err)
	assert.Contains(t, string(timer), "RandomizedDelaySec=")
}
