package daemonconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAuthorizationPlugins(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		want          []string
		err           string
	}{
		{name: "none", content: `{"hosts": ["unix:///var/run/docker.sock"]}`},
		{name: "empty file", content: "  \n"},
		{name: "dtls", content: `{"authorization-plugins": ["other", "dtls-authz"]}`, want: []string{"other", "dtls-authz"}},
		{name: "bom", content: "\uFEFF" + `{"authorization-plugins": ["dtls-authz"]}`, want: []string{"dtls-authz"}},
		{name: "not a list", content: `{"authorization-plugins": "dtls-authz"}`, err: "cannot unmarshal"},
		{name: "broken", content: `{"authorization-plugins": [`, err: "unexpected end"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".json")
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o644))
			got, err := AuthorizationPlugins(p)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), p)
				assert.Contains(t, err.Error(), tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	got, err := AuthorizationPlugins(filepath.Join(dir, "missing.json"))
	assert.NoError(t, err)
	assert.Nil(t, got)
}
