package clientenv

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDockerHost(t *testing.T) {
	for s, want := range map[string]struct {
		host string
		port int
	}{
		"tcp://docker.example.com:2376": {"docker.example.com", 2376},
		"tcp://localhost:1":             {"localhost", 1},
		"tcp://10.0.0.5:65535":          {"10.0.0.5", 65535},
		"tcp://[::1]:2376":              {"::1", 2376},
		"tcp://[2001:db8::1]:2376":      {"2001:db8::1", 2376},
		"tcp://my_host.corp:2376":       {"my_host.corp", 2376},
		"tcp://Docker-1.Example.COM:23": {"Docker-1.Example.COM", 23},
	} {
		h, p, err := ParseDockerHost(s)
		require.NoError(t, err, s)
		assert.Equal(t, want.host, h, s)
		assert.Equal(t, want.port, p, s)
	}
	// Shapes a bundle's maker could use against the shell that reads
	// 'dtls env', or against NO_PROXY (found by a red team), and others.
	for _, s := range []string{
		"", "tcp://", "docker.example.com:2376", "unix:///var/run/docker.sock", "ssh://me@host",
		"tcp://host", "tcp://host:", "tcp://host:0", "tcp://host:65536", "tcp://host:+1", "tcp://host:0x10",
		"tcp://host:2376/", "tcp://host:2376/x", "tcp://host:2376?a=b", "tcp://host:2376#x",
		`tcp://host:2376/\' ;touch X #`, "tcp://h$(id):2376", "tcp://h`id`:2376", "tcp://h;id:2376",
		"tcp://*,corp@prod.example.com:2376", "tcp://*:2376", "tcp://a,b:2376", "tcp://user@host:2376",
		"tcp://-host:2376", "tcp://host-.x:2376", "tcp://a..b:2376", "tcp://.a:2376", "tcp://hôst:2376",
		"tcp://::1:2376", "tcp://[host]:2376", "tcp://[fe80::1%eth0]:2376", "tcp://[::1]]:2376",
		"tcp://host\n:2376", "tcp://host :2376", "tcp://h\u0085:2376",
	} {
		_, _, err := ParseDockerHost(s)
		assert.Error(t, err, "%q", s)
	}
}

func TestCheckCAURL(t *testing.T) {
	for _, s := range []string{"https://ca.example.com", "https://ca.example.com/", "https://ca.example.com:8443", "https://10.0.0.1:8443", "https://[::1]:8443", "https://[::1]"} {
		assert.NoError(t, CheckCAURL(s), s)
	}
	for _, s := range []string{"", "http://ca.example.com", "https://", "https://ca.example.com/x", "https://u@ca.example.com",
		"https://ca.example.com?x", "https://ca\x1b]0;t\x07.example.com", "https://ca.example.com:0", "https://ca.example.com:99999", "https://[::1:8443"} {
		assert.Error(t, CheckCAURL(s), "%q", s)
	}
}
