package authority

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/clientenv"
)

// fakeReach is a host whose names resolve as names says (a missing name
// does not resolve) and whose interfaces hold local.
func fakeReach(names map[string][]string, local ...string) *Reach {
	return &Reach{
		Lookup: func(_ context.Context, name string) ([]net.IP, error) {
			addrs, ok := names[name]
			if !ok {
				return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
			}
			var ips []net.IP
			for _, a := range addrs {
				ips = append(ips, net.ParseIP(a))
			}
			return ips, nil
		},
		Local: func() ([]net.IP, error) {
			var ips []net.IP
			for _, a := range append([]string{"127.0.0.1", "::1"}, local...) {
				ips = append(ips, net.ParseIP(a))
			}
			return ips, nil
		},
	}
}

// TestClientDockerHostReachesTheListener: the daemon URL of a bundle is
// one that reaches the listener, not a bare hostname that does not
// resolve, or resolves elsewhere.
func TestClientDockerHostReachesTheListener(t *testing.T) {
	defaults := []string{"build7", "10.1.2.3", "fd00::7", "localhost", "127.0.0.1"}
	for _, tt := range []struct {
		name   string
		hosts  []string
		listen string
		reach  *Reach
		want   string
	}{
		{name: "hostname that does not resolve: the host's address", hosts: defaults, listen: "0.0.0.0",
			reach: fakeReach(nil, "10.1.2.3", "fd00::7"), want: "tcp://10.1.2.3:2376"},
		{name: "hostname that resolves to loopback only (Debian's 127.0.1.1)", hosts: defaults, listen: "0.0.0.0",
			reach: fakeReach(map[string][]string{"build7": {"127.0.1.1"}}, "10.1.2.3"), want: "tcp://10.1.2.3:2376"},
		{name: "hostname that resolves to another host", hosts: defaults, listen: "0.0.0.0",
			reach: fakeReach(map[string][]string{"build7": {"10.9.9.9"}}, "10.1.2.3"), want: "tcp://10.1.2.3:2376"},
		{name: "hostname that resolves to this host: the name", hosts: defaults, listen: "0.0.0.0",
			reach: fakeReach(map[string][]string{"build7": {"10.1.2.3"}}, "10.1.2.3"), want: "tcp://build7:2376"},
		{name: "the FQDN resolves, the short name does not", hosts: []string{"build7", "build7.corp.example", "10.1.2.3"}, listen: "0.0.0.0",
			reach: fakeReach(map[string][]string{"build7.corp.example": {"10.1.2.3"}}, "10.1.2.3"), want: "tcp://build7.corp.example:2376"},
		{name: "IPv6 only", hosts: []string{"build7", "fd00::7", "localhost"}, listen: "::",
			reach: fakeReach(nil, "fd00::7"), want: "tcp://[fd00::7]:2376"},
		{name: "listener on one address: that one", hosts: defaults, listen: "10.1.2.3",
			reach: fakeReach(map[string][]string{"build7": {"10.1.2.4"}}, "10.1.2.3", "10.1.2.4"), want: "tcp://10.1.2.3:2376"},
		{name: "listener on loopback", hosts: defaults, listen: "127.0.0.1",
			reach: fakeReach(map[string][]string{"build7": {"10.1.2.3"}}, "10.1.2.3"), want: "tcp://127.0.0.1:2376"},
		{name: "listener on loopback, only localhost covered", hosts: []string{"build7", "localhost"}, listen: "127.0.0.1",
			reach: fakeReach(nil, "10.1.2.3"), want: "tcp://localhost:2376"},
		{name: "names only (--host): kept, nothing better is known", hosts: []string{"docker.example.com"}, listen: "0.0.0.0",
			reach: fakeReach(nil, "10.1.2.3"), want: "tcp://docker.example.com:2376"},
		{name: "an address of another host (--host, NAT): the name", hosts: []string{"docker.example.com", "203.0.113.10"}, listen: "0.0.0.0",
			reach: fakeReach(nil, "10.1.2.3"), want: "tcp://docker.example.com:2376"},
		{name: "nothing but loopback", hosts: []string{"localhost", "127.0.0.1"}, listen: "0.0.0.0",
			reach: fakeReach(nil, "10.1.2.3"), want: "tcp://localhost:2376"},
		{name: "lookups that fail", hosts: defaults, listen: "0.0.0.0",
			reach: &Reach{
				Lookup: func(context.Context, string) ([]net.IP, error) { return nil, errors.New("i/o timeout") },
				Local:  func() ([]net.IP, error) { return []net.IP{net.ParseIP("10.1.2.3")}, nil },
			}, want: "tcp://10.1.2.3:2376"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ClientDockerHost(tt.hosts, tt.listen, 2376, tt.reach))
		})
	}
}

// TestInitDockerHostIsAnAddressThatReaches: init records, and issue-client
// writes into the bundle, the host's address when its name does not
// resolve.
func TestInitDockerHostIsAnAddressThatReaches(t *testing.T) {
	h := newHost(t)
	res := h.init(t, func(r *InitRequest) {
		r.Hosts = []string{"build7", "10.1.2.3", "localhost", "127.0.0.1"}
		r.Reach = fakeReach(nil, "10.1.2.3")
	}, Options{})
	assert.Equal(t, "tcp://10.1.2.3:2376", res.Server.DockerHost)
	srv, err := ReadServer(h.state)
	require.NoError(t, err)
	assert.Equal(t, "tcp://10.1.2.3:2376", srv.DockerHost)

	a := h.open(t, Options{})
	dir := filepath.Join(h.root, "alice")
	_, err = a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: func(string) string { return dir }, Now: time.Now()})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, clientenv.MetaFile))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"docker_host": "tcp://10.1.2.3:2376"`)
}
