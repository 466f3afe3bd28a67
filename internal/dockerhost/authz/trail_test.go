package authz

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestGoesOnWithoutTrail: while the trail cannot be written only the reads
// the readonly role may make go on (deny-writes), none with deny-all.
func TestGoesOnWithoutTrail(t *testing.T) {
	writes := &Engine{cfg: Config{AuditFailure: AuditDenyWrites}}
	all := &Engine{cfg: Config{AuditFailure: AuditDenyAll}}
	dflt := &Engine{}
	for _, c := range []struct {
		method, uri string
		read        bool
	}{
		{"GET", "/v1.47/containers/json?all=1", true},
		{"HEAD", "/_ping", true},
		{"GET", "/v1.47/containers/abc/json", true},
		{"GET", "/v1.47/containers/abc/logs", false},      // copies data out
		{"GET", "/v1.47/containers/abc/attach/ws", false}, // writes to stdin
		{"GET", "/v1.47/containers/abc/export", false},
		{"POST", "/v1.47/containers/create", false},
		{"DELETE", "/v1.47/containers/abc", false},
		{"GET", "/v1.47/nothing/here", false},
		{"GET", "/containers/x%2F..%2Fcreate", false},
		{"", "", false},
	} {
		rec := AuditRecord{Method: c.method, URI: c.uri}
		assert.Equal(t, c.read, writes.goesOnWithoutTrail(rec), "%s %s", c.method, c.uri)
		assert.Equal(t, c.read, dflt.goesOnWithoutTrail(rec), "default: %s %s", c.method, c.uri)
		assert.False(t, all.goesOnWithoutTrail(rec), "deny-all: %s %s", c.method, c.uri)
	}
	assert.EqualError(t, AuditFailure("deny-some").Check(), `invalid audit failure setting "deny-some": want "deny-writes" or "deny-all"`)
	_, err := NewPlugin(Config{AuditFailure: "x"})
	assert.Error(t, err)
}
