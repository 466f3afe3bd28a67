package daemoncheck

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEnrolledBundleHints: for a bundle from 'dtls enroll' (dtls.json has
// ca_url), check's fix is 'dtls agent' or a new enrolment with the
// bundle's CA URL and daemon, never 'dtls renew' on a CA host, which the
// online CA does not have; a CA host's bundle keeps its 'dtls renew'.
func TestEnrolledBundleHints(t *testing.T) {
	const caURL = "https://ca.example.com:8443"
	now := time.Now()
	ca := newTestCA(t, "dtls test CA", now)
	other := newTestCA(t, "another CA", now)
	cert, key := ca.client(t, "alice", now)
	srvCert, srvKey := other.issue(t, leafSpec{cn: "localhost", eku: x509.ExtKeyUsageServerAuth, hosts: []string{"127.0.0.1"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)})
	pair, err := tlsKeyPair(srvCert, srvKey)
	require.NoError(t, err)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	s.TLS = pair
	s.Config.ErrorLog = quietLog
	s.StartTLS()
	t.Cleanup(s.Close)
	rotated := "tcp://" + s.Listener.Addr().String()

	check := func(t *testing.T, enrolled bool, host string, at time.Time, mutate func(dir string)) *CheckError {
		t.Helper()
		b := writeCheckBundle(t, ca.pem, cert, key, host)
		if enrolled {
			b.Meta.CAURL = caURL
		}
		if mutate != nil {
			mutate(b.Dir)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Check(ctx, b, "", at)
		var ce *CheckError
		require.ErrorAs(t, err, &ce)
		return ce
	}
	enroll := "dtls enroll " + caURL + " TOKEN --docker-host "
	for _, tt := range []struct {
		name     string
		enrolled bool
		host     string
		at       time.Time
		mutate   func(dir string)
		problem  Problem
		want     []string
		not      []string
	}{
		{name: "enrolled, expired", enrolled: true, host: "tcp://127.0.0.1:1", at: now.Add(48 * time.Hour), problem: ProblemClientExpired,
			want: []string{"renews only a certificate that is still valid", enroll + "tcp://127.0.0.1:1 --force", "dtls ca token --client NAME"},
			not:  []string{"dtls renew", "CA host"}},
		{name: "enrolled, daemon of another CA", enrolled: true, host: rotated, at: now, problem: ProblemUntrustedServer,
			want: []string{"dtls agent --once", enroll + rotated + " --force"},
			not:  []string{"dtls renew"}},
		{name: "enrolled, broken", enrolled: true, host: "tcp://127.0.0.1:1", at: now, problem: ProblemBundle,
			mutate: func(dir string) { require.NoError(t, os.Remove(filepath.Join(dir, "key.pem"))) },
			want:   []string{enroll + "tcp://127.0.0.1:1 --force"},
			not:    []string{"dtls import", "dtls renew"}},
		{name: "CA host's bundle, expired", host: "tcp://127.0.0.1:1", at: now.Add(48 * time.Hour), problem: ProblemClientExpired,
			want: []string{"'dtls renew alice --archive -' on the CA host"},
			not:  []string{"dtls enroll", "dtls agent"}},
		{name: "CA host's bundle, daemon of another CA", host: rotated, at: now, problem: ProblemUntrustedServer,
			want: []string{"'dtls renew alice --archive -' on the CA host"},
			not:  []string{"dtls enroll", "dtls agent"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ce := check(t, tt.enrolled, tt.host, tt.at, tt.mutate)
			assert.Equal(t, tt.problem, ce.Problem, ce.Msg)
			for _, w := range tt.want {
				assert.Contains(t, ce.Hint, w)
			}
			for _, n := range tt.not {
				assert.NotContains(t, ce.Hint, n)
			}
		})
	}
}
