package authority

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dtls-tool/dtls/pki"
)

// BenchmarkIdentify is the inventory's share of each API call the
// authorization plugin decides: one certificate looked up by serial and its
// holder's role, answered from the cache while the inventory is unchanged.
// BenchmarkIdentifyUncached is the same with a commit before each call.
func BenchmarkIdentify(b *testing.B) {
	h := newHost(b)
	r := h.request(time.Now())
	_, err := Init(r, Options{})
	require.NoError(b, err)
	a, err := Open(r.StateDir, Options{})
	require.NoError(b, err)
	out := b.TempDir()
	issued, err := a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: func(n string) string { return filepath.Join(out, n) },
		DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Role: "developer", Now: time.Now()})
	require.NoError(b, err)
	a.Close()
	cert, err := issued[0].Record.Cert()
	require.NoError(b, err)
	rd, err := OpenReader(r.StateDir)
	require.NoError(b, err)
	defer rd.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := rd.Identify(cert); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIdentifyUncached(b *testing.B) {
	h := newHost(b)
	_, err := Init(h.request(time.Now()), Options{})
	require.NoError(b, err)
	a, err := Open(h.state, Options{})
	require.NoError(b, err)
	defer a.Close()
	out := b.TempDir()
	issued, err := a.IssueClients(ClientRequest{Names: []string{"alice"}, Dir: func(n string) string { return filepath.Join(out, n) },
		DockerHost: "tcp://h:2376", KeyType: pki.ECDSAP256, Now: time.Now()})
	require.NoError(b, err)
	cert, err := issued[0].Record.Cert()
	require.NoError(b, err)
	rd, err := OpenReader(h.state)
	require.NoError(b, err)
	defer rd.Close()
	roles := []string{"developer", "readonly"}
	i := 0
	for b.Loop() {
		b.StopTimer()
		_, err := a.SetRole("alice", roles[i%2], time.Now())
		require.NoError(b, err)
		i++
		b.StartTimer()
		if _, _, err := rd.Identify(cert); err != nil {
			b.Fatal(err)
		}
	}
}
