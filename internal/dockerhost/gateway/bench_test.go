package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"testing"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// BenchmarkGatewayList is one GET /containers/json through the gateway
// (mutual TLS, a kept-alive connection, the engine's decision, the audit
// records, dockerd's answer over its unix socket), against a real dockerd;
// BenchmarkDockerdList is the same call on dockerd's unix socket alone, the
// baseline of the same run. The difference is what the gateway adds on
// its side of the TLS connection (internal/bench/gatewaylat measures the
// whole against dockerd's own TLS and a plugin).
func BenchmarkGatewayList(b *testing.B) {
	tg := startGatewayMode(b, authz.ModeEnforce)
	pool := x509.NewCertPool()
	pool.AddCert(tg.pki.ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{tg.pki.client(b, "admin-bench")}, RootCAs: pool}}}
	defer c.CloseIdleConnections()
	benchList(b, c, "https://"+tg.addr)
}

func BenchmarkDockerdList(b *testing.B) {
	tg := startGatewayMode(b, authz.ModeEnforce)
	c := tg.d.Client()
	defer c.CloseIdleConnections()
	benchList(b, c, "http://docker")
}

func benchList(b *testing.B, c *http.Client, base string) {
	get := func() {
		resp, err := c.Get(base + "/v1.41/containers/json")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /containers/json: %s", resp.Status)
		}
	}
	for i := 0; i < 50; i++ {
		get()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get()
	}
}
