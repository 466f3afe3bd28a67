package daemonconfig

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckUnitWord(t *testing.T) {
	for _, v := range []string{"/usr/bin/dtls", "unix:///var/run/docker.sock", "tcp://0.0.0.0:2376", "/var/lib/dtls", "https://ca.example.com:8443", "/srv/état/dtls"} {
		assert.NoError(t, CheckUnitWord("--x", v), v)
	}
	// Shapes of the red team's injection, and others.
	for _, v := range []string{
		"", "unix:///tmp/d\nExecStartPre=+/tmp/evil", "/tmp/st\nExecStartPre=+/tmp/evil #", "unix:///var/run/docker.sock --policy /tmp/x.json",
		"/a\rb", "/a\tb", "/a\x00b", "/a\x7fb", "/a\u0085b", "/%h/x", `/a\nb`, `/a"b`, "/a'b", "/a$HOME", "/a;b", "/a${X}",
		"+/tmp/evil", "-/x", "!/x", "@/x", ":/x", "|/x", "/a\xffb",
	} {
		assert.Error(t, CheckUnitWord("--x", v), "%q", v)
	}
	assert.EqualError(t, CheckUnitWord("--state-dir", "/a b"), `--state-dir "/a b" cannot go into a systemd unit: it holds ' ': whitespace or a control character`)
}
