package authority

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecordedHostsAndCAURL(t *testing.T) {
	dir := t.TempDir()
	// No server.json: this machine's own names, no online CA.
	assert.Equal(t, DefaultHosts(), RecordedHosts(dir))
	assert.Equal(t, "", RecordedCAURL(dir))

	write := func(s string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, ServerRecord), []byte(s), 0o600))
	}
	write(`{"hosts": ["docker.example.com", "10.0.0.7"], "ca_url": "https://ca.example.com:8443"}`)
	assert.Equal(t, []string{"docker.example.com", "10.0.0.7"}, RecordedHosts(dir))
	assert.Equal(t, "https://ca.example.com:8443", RecordedCAURL(dir))

	// A record that names no host falls back to this machine's names.
	write(`{"hosts": []}`)
	assert.Equal(t, DefaultHosts(), RecordedHosts(dir))
	assert.Equal(t, "", RecordedCAURL(dir))

	// An unreadable record is no record.
	write(`{`)
	assert.Equal(t, DefaultHosts(), RecordedHosts(dir))
	assert.Equal(t, "", RecordedCAURL(dir))
}
