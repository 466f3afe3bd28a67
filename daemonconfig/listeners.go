package daemonconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Host is one address dockerd listens on, and where it is set.
type Host struct {
	Addr string
	// Source is daemon.json's path, or the docker.service (or its
	// environment file) that passes it as -H.
	Source string
}

// Listeners is how dockerd listens for the Engine API: the hosts of
// daemon.json and of docker.service's -H flags, and its TLS settings.
type Listeners struct {
	// Hosts are "hosts" of daemon.json and the unit's -H flags (dockerd
	// refuses to start when both are given; both are kept, so that every
	// listener either would have is seen).
	Hosts []Host
	// TLS and TLSVerify are --tls and --tlsverify, else daemon.json's
	// "tls" and "tlsverify". tlsverify implies tls (moby
	// cmd/dockerd/daemon.go: "if opts.TLSVerify { opts.TLS = true }").
	TLS, TLSVerify bool
	// TLSVerifyFrom is where TLSVerify was read ("" when not set).
	TLSVerifyFrom string
}

// ReadListeners reads daemon.json at path (a missing file is dockerd's
// defaults: the local socket only) and docker.service in unitDirs (not
// looked for when unitDirs is empty). A file that exists but cannot be read
// or is not valid JSON is an error: what it sets is unknown.
func ReadListeners(path string, unitDirs []string) (*Listeners, error) {
	l := &Listeners{}
	var keys map[string]json.RawMessage
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read daemon config %q: %w", path, err)
	default:
		// An empty file is dockerd's defaults (moby daemon/config
		// getConflictFreeConfiguration skips it).
		if b = bytes.TrimSpace(bytes.TrimPrefix(b, utf8BOM)); len(b) == 0 {
			break
		}
		if err := checkSyntax(b); err != nil {
			return nil, fmt.Errorf("read daemon config %q: %w", path, err)
		}
		if err := json.Unmarshal(b, &keys); err != nil {
			return nil, fmt.Errorf("read daemon config %q: want a JSON object: %w", path, err)
		}
	}
	hosts, err := stringsOf(keys["hosts"])
	if err != nil {
		return nil, fmt.Errorf("read daemon config %q: \"hosts\": %w", path, err)
	}
	for _, h := range hosts {
		l.Hosts = append(l.Hosts, Host{Addr: h, Source: path})
	}
	l.TLS = boolOf(keys["tls"])
	if l.TLSVerify = boolOf(keys["tlsverify"]); l.TLSVerify {
		l.TLSVerifyFrom = path
	}
	if len(unitDirs) == 0 {
		return l, nil
	}
	u, err := FindUnit(unitDirs)
	if err != nil {
		return nil, fmt.Errorf("read docker.service: %w", err)
	}
	if u == nil {
		return l, nil
	}
	for _, h := range u.Hosts {
		l.Hosts = append(l.Hosts, Host{Addr: h, Source: u.Path})
	}
	for _, h := range u.VarHosts {
		l.Hosts = append(l.Hosts, Host{Addr: h, Source: u.VarSource})
	}
	// A flag wins over the file (dockerd would refuse both anyway).
	flags := DockerdFlagMap(u.Expanded)
	if v, ok := lastBool(flags["tls"]); ok {
		l.TLS = v
	}
	if v, ok := lastBool(flags["tlsverify"]); ok {
		l.TLSVerify, l.TLSVerifyFrom = v, u.Path
	}
	return l, nil
}

// Unverified returns the TCP hosts that take callers without a client
// certificate checked against a CA: plain TCP, or TLS without tlsverify.
// A bare HOST:PORT is TCP too, and dockerd trims each entry (moby
// opts.ParseHost).
func (l *Listeners) Unverified() []Host {
	if l.TLSVerify {
		return nil
	}
	var out []Host
	for _, h := range l.Hosts {
		a := strings.TrimSpace(h.Addr)
		if strings.HasPrefix(a, "tcp://") || (a != "" && !strings.Contains(a, "://")) {
			out = append(out, Host{Addr: a, Source: h.Source})
		}
	}
	return out
}

func stringsOf(raw json.RawMessage) ([]string, error) {
	if raw == nil {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("neither a string nor a list of strings")
	}
	return []string{s}, nil
}

func boolOf(raw json.RawMessage) bool {
	var v bool
	return raw != nil && json.Unmarshal(raw, &v) == nil && v
}

// lastBool is the value of a boolean flag given in vals (the last one
// wins; given alone it is true).
func lastBool(vals []string) (v, ok bool) {
	if len(vals) == 0 {
		return false, false
	}
	last := vals[len(vals)-1]
	return last == "" || last == "true" || last == "1", true
}
