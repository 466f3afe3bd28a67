package authz

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DaemonPaths are dockerd's own paths on this host, as its daemon.json
// sets them: what a container mounting them would own dockerd with.
type DaemonPaths struct {
	// Socket is the first unix socket dockerd listens on (the plugin's
	// lookups go there).
	Socket string
	// Protected are its data-root, exec-root, pidfile, unix sockets, TLS
	// files' directories and key file: no role but admin may mount them.
	Protected []string
}

// ReadDaemonPaths reads a daemon.json for DaemonPaths; a missing file is
// dockerd's defaults (moby daemon/config: data-root /var/lib/docker,
// exec-root /var/run/docker, the socket /var/run/docker.sock).
func ReadDaemonPaths(path string) (DaemonPaths, error) {
	var cfg struct {
		Hosts      []string `json:"hosts"`
		DataRoot   string   `json:"data-root"`
		Graph      string   `json:"graph"`
		ExecRoot   string   `json:"exec-root"`
		Pidfile    string   `json:"pidfile"`
		TLSCACert  string   `json:"tlscacert"`
		TLSCert    string   `json:"tlscert"`
		TLSKey     string   `json:"tlskey"`
		KeyPath    string   `json:"deprecated-key-path"`
		Containerd string   `json:"containerd"`
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return DaemonPaths{}, fmt.Errorf("read daemon config %q: %w", path, err)
	default:
		if err := json.Unmarshal(b, &cfg); err != nil {
			return DaemonPaths{}, fmt.Errorf("read daemon config %q: %w", path, err)
		}
	}
	d := DaemonPaths{}
	add := func(p string) {
		if filepath.IsAbs(p) {
			d.Protected = append(d.Protected, filepath.Clean(p))
		}
	}
	for _, h := range cfg.Hosts {
		if s, ok := strings.CutPrefix(h, "unix://"); ok {
			if d.Socket == "" {
				d.Socket = s
			}
			add(s)
		}
	}
	if d.Socket == "" {
		d.Socket = "/var/run/docker.sock"
		add(d.Socket)
	}
	root := cmp.Or(cfg.DataRoot, cfg.Graph, "/var/lib/docker")
	add(root)
	add(cmp.Or(cfg.ExecRoot, "/var/run/docker"))
	add(cfg.Pidfile)
	add(cfg.KeyPath)
	add(cfg.Containerd)
	for _, f := range []string{cfg.TLSCACert, cfg.TLSCert, cfg.TLSKey} {
		if f != "" {
			add(filepath.Dir(f))
		}
	}
	return d, nil
}
