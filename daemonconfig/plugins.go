package daemonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// AuthorizationPlugins returns the names in the "authorization-plugins"
// list of the daemon.json at path: the plugins dockerd asks about every API
// call (moby daemon/config/config.go AuthorizationPlugins; the list is
// read only at start). A missing file, or one without the key, names none
// (nil, nil); a file dockerd could not read either is an error.
func AuthorizationPlugins(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read daemon config %q: %w", path, err)
	}
	b = bytes.TrimPrefix(b, utf8BOM)
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var v struct {
		Plugins []string `json:"authorization-plugins"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read daemon config %q: %w", path, err)
	}
	return v.Plugins, nil
}
