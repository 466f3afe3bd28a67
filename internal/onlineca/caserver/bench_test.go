package caserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/catest"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

// benchEnrol enrols b.N clients through the server's handler, in process
// (no TLS: the handshake is the client's and the listener's cost, not the
// CA's): parse the token, look it up, sign the CSR, commit the record and
// the token's use, answer. The tokens and CSRs are made before the timer
// starts; parallel runs the requests on GOMAXPROCS goroutines.
func benchEnrol(b *testing.B, o catest.Options, parallel bool) {
	ca := catest.Start(b, o)
	h := ca.Server.Handler()
	const keys = 16
	var csrs [keys][]byte
	for i := range csrs {
		csr, _, err := pki.NewCSR("bench", "")
		if err != nil {
			b.Fatal(err)
		}
		csrs[i] = csr
	}
	bodies := make([][]byte, b.N)
	for i := range bodies {
		tok := ca.Token(b, fleet.TokenRequest{Kind: store.KindClient, Name: fmt.Sprintf("client-%d", i), TTL: 3600})
		body, err := json.Marshal(fleet.EnrollRequest{Token: tok, CSR: string(csrs[i%keys])})
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	var next, failed atomic.Int64
	one := func() {
		i := next.Add(1) - 1
		req, _ := http.NewRequest(http.MethodPost, fleet.PathEnroll, bytes.NewReader(bodies[i]))
		rw := newRecorder()
		h.ServeHTTP(rw, req)
		if rw.status != http.StatusOK {
			failed.Add(1)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
	} else {
		for range b.N {
			one()
		}
	}
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d enrolments failed", n, b.N)
	}
}

func BenchmarkEnrol(b *testing.B)         { benchEnrol(b, catest.Options{}, false) }
func BenchmarkEnrolParallel(b *testing.B) { benchEnrol(b, catest.Options{}, true) }
