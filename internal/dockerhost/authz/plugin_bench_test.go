package authz

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkAuthZReq measures one AuthZReq round trip over the unix socket,
// as dockerd makes it for `docker ps` over TLS: GET /containers/json, one
// peer certificate, a fake inventory, the built-in policy. It reports the
// heap in use (plugin and client, after a GC) before and after the b.N
// requests: a growth that scales with b.N would be a leak.
//
//	go test -run '^$' -bench AuthZReq -benchmem ./authz/
func BenchmarkAuthZReq(b *testing.B) {
	ca := newTestCA(b, "ca")
	alice := ca.client(b, "alice", 5)
	body, err := json.Marshal(tlsRequest("GET", "/v1.47/containers/json?all=1", alice))
	require.NoError(b, err)

	for _, bc := range []struct {
		name     string
		auditTo  string // "file": the trail in a temp dir; "discard": encoded, not written
		parallel bool
	}{
		{"audit=discard", "discard", false},
		{"audit=file", "file", false},
		{"audit=file/parallel", "file", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			inv := newFakeInventory()
			inv.add(alice, "developer")
			c := Config{Inventory: inv}
			if bc.auditTo == "discard" {
				a, err := OpenAuditLog("", 0, 0, io.Discard)
				require.NoError(b, err)
				b.Cleanup(func() { a.Close() })
				c.Audit = a
			}
			tp := startPlugin(b, c)
			tp.client.Transport.(*http.Transport).MaxIdleConnsPerHost = runtime.GOMAXPROCS(0)
			call := func() error {
				resp, err := tp.client.Post("http://plugin.moby.localhost"+pathAuthZReq, mediaType, bytes.NewReader(body))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				var out authzResponse
				if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
					return err
				}
				if !out.Allow {
					b.Fatalf("denied: %s", out.Msg)
				}
				return nil
			}
			require.NoError(b, call()) // warm up the connection

			before := heapInUse()
			if bc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := call(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for b.Loop() {
					if err := call(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			after := heapInUse()
			b.ReportMetric(float64(before), "heap-before-B")
			b.ReportMetric(float64(after), "heap-after-B")
			b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "heap-growth-B/op")
		})
	}
}

// heapInUse is the heap in use after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
