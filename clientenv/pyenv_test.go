package clientenv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The end-to-end proof that these variables break a real docker-py is
// TestDockerPyIgnoresCAWithRequestsCABundle in check_test.go, next to the
// test daemon it shares.

func TestPythonCAOverrides(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "none", env: map[string]string{"SSL_CERT_FILE": "/x"}},
		{name: "requests", env: map[string]string{"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}, want: []string{"REQUESTS_CA_BUNDLE"}},
		{name: "curl", env: map[string]string{"CURL_CA_BUNDLE": "/x.pem"}, want: []string{"CURL_CA_BUNDLE"}},
		{name: "both, in requests' order", env: map[string]string{"CURL_CA_BUNDLE": "/b", "REQUESTS_CA_BUNDLE": "/a"}, want: []string{"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}},
		// requests reads os.environ.get(...) or ...: an empty value is
		// skipped, and docker-py keeps the bundle's ca.pem.
		{name: "empty is unset", env: map[string]string{"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}},
		// The names are case-sensitive for requests (os.environ).
		{name: "lower case is another variable", env: map[string]string{"requests_ca_bundle": "/x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, PythonCAOverrides(func(k string) string { return tt.env[k] }))
		})
	}
}

func TestPythonCAWarning(t *testing.T) {
	assert.Empty(t, PythonCAWarning(nil))
	one := PythonCAWarning([]string{"REQUESTS_CA_BUNDLE"})
	assert.Equal(t, `REQUESTS_CA_BUNDLE is set: docker-py (docker-compose v1, Ansible) verifies the daemon with it, not the bundle's ca.pem, `+
		`and fails with "unable to get local issuer certificate" (docker/docker-py#2433); run those tools with env -u REQUESTS_CA_BUNDLE`, one)
	// One line, short: env prints it at
	// every shell start.
	assert.NotContains(t, one, "\n")
	assert.Less(t, len(one), 256)
	two := PythonCAWarning([]string{"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"})
	assert.Contains(t, two, "REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE are set:")
	assert.Contains(t, two, "run those tools with env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE")
}
