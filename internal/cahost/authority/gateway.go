package authority

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dtls-tool/dtls/daemonconfig"
)

// The gateway's systemd units (init --gateway): the gateway owns the TCP
// port, dockerd listens on its local socket only.
const (
	GatewaySocketUnit  = "dtls-gateway.socket"
	GatewayServiceUnit = "dtls-gateway.service"
	// ModeGateway is server.json's "mode" of a host whose TCP listener is
	// the gateway's; "" is dockerd's own.
	ModeGateway = "gateway"
)

// GatewayUnitConfig is what the gateway's units run with.
type GatewayUnitConfig struct {
	Exe      string // the dtls binary
	Listen   string // tcp://ADDR:PORT, the socket's ListenStream
	Docker   string // dockerd's unix socket, unix:///PATH
	StateDir string
	CertsDir string
	AuditLog string
	Policy   string // "" for the built-in one
	CAURL    string // a fleet host's online CA
}

// ListenStream is systemd's ListenStream= for a tcp:// listener: an
// address and port (systemd.socket(5) takes no host name). The wildcard
// 0.0.0.0 becomes the bare port: systemd then listens on every IPv4 and
// IPv6 address (BindIPv6Only=both), as dockerd does for tcp://0.0.0.0
// (Go's listener is dual-stack on a wildcard address).
func ListenStream(listen string) (string, error) {
	host, port, err := ParseListen(listen)
	if err != nil {
		return "", err
	}
	switch {
	case host == "" || host == "0.0.0.0" || host == "::":
		return fmt.Sprint(port), nil
	case net.ParseIP(host) == nil:
		return "", hint(fmt.Errorf("--listen %q names a host, not an address: the gateway's systemd socket (ListenStream=) takes an IP address", listen),
			"give the address to listen on, e.g. --listen tcp://0.0.0.0:%d", port)
	}
	return net.JoinHostPort(host, fmt.Sprint(port)), nil
}

// GatewayUnits are the gateway's systemd units. The socket holds the TCP
// port, so that connections wait (instead of being refused) while the
// gateway restarts, and a gateway that dies takes remote access down and
// nothing else. The service decides with the authorization plugin's
// engine, so it runs as the plugin does (AuthzUnits): root for dockerd's
// socket and the state directory (owner access), CAP_DAC_READ_SEARCH
// alone to resolve any host path a container asks to mount, and the
// host's /home, /root, /tmp and /dev as they are (read-only): host paths
// are judged as dockerd will mount them, never in an empty or private
// copy where a link it cannot follow looks harmless. It writes the audit
// log (and the state directory's SQLite -shm file) and nothing else.
func GatewayUnits(c GatewayUnitConfig) (map[string][]byte, error) {
	stream, err := ListenStream(c.Listen)
	if err != nil {
		return nil, err
	}
	args := []string{c.Exe, "gateway", "serve", "--listen", c.Listen, "--docker", c.Docker,
		"--state-dir", c.StateDir, "--certs-dir", c.CertsDir, "--audit-log", c.AuditLog}
	if c.Policy != "" {
		args = append(args, "--policy", c.Policy)
	}
	if c.CAURL != "" {
		args = append(args, "--ca-url", c.CAURL)
	}
	return map[string][]byte{
		GatewaySocketUnit: []byte(`# Written by dtls init --gateway.
[Unit]
Description=dtls gateway socket (mutual TLS to dockerd)

[Socket]
ListenStream=` + stream + `
NoDelay=true

[Install]
WantedBy=sockets.target
`),
		GatewayServiceUnit: []byte(`# Written by dtls init --gateway.
[Unit]
Description=dtls gateway: mutual TLS, roles and audit in front of dockerd
Requires=` + GatewaySocketUnit + `
After=` + GatewaySocketUnit + ` docker.service

[Service]
ExecStart=` + strings.Join(args, " ") + `
Restart=always
RestartSec=1
NoNewPrivileges=yes
ProtectSystem=strict
# The gateway judges host paths as dockerd will mount them: it sees the
# host's /home, /root and /tmp as they are (read-only), and /dev.
ProtectHome=read-only
ReadWritePaths=` + c.StateDir + ` ` + filepath.Dir(c.AuditLog) + `
# /run/dtls: the local socket (docker.sock, 0666: the policy decides)
# and the per-container sockets (sockets/, 0700).
RuntimeDirectory=dtls
RuntimeDirectoryMode=0755
` + logsDirectory(c.AuditLog) + `UMask=0077
# Every record goes to the journal too (stdout): journald's default rate
# limit (10,000 lines in 30 s) dropped most of a flood, so the copy held
# nothing of it; a caller's denials are counted beyond a burst, so the
# lines stay bounded (found by a red team).
LogRateLimitIntervalSec=0
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
AmbientCapabilities=
# AF_UNIX for dockerd and journald, AF_INET(6) for its listeners and the
# online CA's revocation list (--ca-url).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`),
	}, nil
}

// checkUnitWords refuses a value the units would hold that systemd
// reads as more than one word (daemonconfig.CheckUnitWord): each comes
// from a flag, the environment or daemon.json.
func (r *InitRequest) checkUnitWords(hosts []string) error {
	var words [][2]string
	if r.Authz {
		words = append(words, [][2]string{{"the plugin's program", r.AuthzExe}, {"--authz-socket", r.AuthzSocket},
			{"--state-dir", r.StateDir}, {"the plugin's audit log", r.AuthzLog}, {"--daemon-json", r.DaemonJSON}}...)
		if r.AuthzPolicy != "" {
			words = append(words, [2]string{"the plugin's policy", r.AuthzPolicy})
		}
	}
	if r.Gateway {
		words = append(words, [][2]string{{"the gateway's program", r.GatewayExe}, {"--listen", r.Listen},
			{`daemon.json's "hosts" (the gateway's --docker)`, dockerSocket(hosts)}, {"--state-dir", r.StateDir},
			{"--certs-dir", r.CertsDir}, {"the gateway's audit log", r.GatewayLog}}...)
		if r.GatewayPolicy != "" {
			words = append(words, [2]string{"the gateway's policy", r.GatewayPolicy})
		}
		if r.CAURL != "" {
			words = append(words, [2]string{"--ca-url", r.CAURL})
		}
	}
	for _, w := range words {
		if err := daemonconfig.CheckUnitWord(w[0], w[1]); err != nil {
			return err
		}
	}
	return nil
}

// dockerSocket is the unix socket the gateway forwards to: the first
// unix:// entry of daemon.json's "hosts" after the merge, else dockerd's
// default (also under fd://: docker.socket listens on /run/docker.sock).
func dockerSocket(hosts []string) string {
	for _, h := range hosts {
		if p, ok := strings.CutPrefix(strings.TrimSpace(h), "unix://"); ok && p != "" {
			return "unix://" + p
		}
	}
	return "unix:///var/run/docker.sock"
}

// planGatewayUnits writes the gateway's units (init --gateway), or, on a
// host that has them, removes them (init without --gateway moves the TCP
// listener back to dockerd). It reports whether any is written or removed.
func planGatewayUnits(t *txn, r InitRequest, dropInDir string, hosts []string, res *InitResult) (bool, error) {
	if !r.Gateway {
		return planGatewayRemoval(t, r, dropInDir, res), nil
	}
	units, err := GatewayUnits(GatewayUnitConfig{Exe: r.GatewayExe, Listen: r.Listen, Docker: dockerSocket(hosts),
		StateDir: r.StateDir, CertsDir: r.CertsDir, AuditLog: r.GatewayLog, Policy: r.GatewayPolicy, CAURL: r.CAURL})
	if err != nil {
		return false, err
	}
	written := planUnitFiles(t, r, dropInDir, units, res)
	res.GatewayUnits = append(res.GatewayUnits, written...)
	return len(written) > 0, nil
}

// planUnitFiles plans systemd unit files (names relative to dir) that
// differ from what is there, 0644 in directories made 0755, and returns
// their paths: the one writer of the plugin's and the gateway's units.
func planUnitFiles(t *txn, r InitRequest, dir string, units map[string][]byte, res *InitResult) []string {
	names := make([]string, 0, len(units))
	for n := range units {
		names = append(names, n)
	}
	sort.Strings(names)
	var written []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if fileHas(p, units[n]) {
			continue
		}
		if PackagedUnit(r.PackagedUnitDir, n, units[n]) {
			res.say("%s: the packaged unit in %s is used", n, r.PackagedUnitDir)
			continue
		}
		written = append(written, p)
		if r.DryRun {
			res.say("would write %s", p)
			continue
		}
		t.Mkdir(filepath.Dir(p), 0o755)
		t.Write(p, units[n], 0o644)
		res.say("wrote %s", p)
	}
	return written
}

// planGatewayRemoval removes the gateway's units init wrote.
func planGatewayRemoval(t *txn, r InitRequest, dropInDir string, res *InitResult) bool {
	changed := false
	for _, n := range []string{GatewayServiceUnit, GatewaySocketUnit} {
		p := filepath.Join(dropInDir, n)
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(b), "# Written by dtls init --gateway.") {
			// Only ours: a unit of that name written by hand stays.
			continue
		}
		changed = true
		res.GatewayRemoved = append(res.GatewayRemoved, p)
		if r.DryRun {
			res.say("would remove %s (dockerd serves TCP again)", p)
			continue
		}
		t.Remove(p)
		res.say("removed %s (dockerd serves TCP again)", p)
	}
	return changed
}

// Mode is the recorded mode of the host at stateDir: ModeGateway when its
// TCP listener is the gateway's, "" when dockerd's (or nothing is
// recorded).
func Mode(stateDir string) string {
	if srv, err := ReadServer(stateDir); err == nil {
		return srv.Mode
	}
	return ""
}

// mode is the mode init records.
func (r *InitRequest) mode() string {
	if r.Gateway {
		return ModeGateway
	}
	return ""
}

// mergedHosts are the "hosts" of the merged daemon.json.
func mergedHosts(merged *daemonconfig.Result) []string {
	var v struct {
		Hosts []string `json:"hosts"`
	}
	_ = json.Unmarshal(merged.New, &v)
	return v.Hosts
}

// parseListen parses r.Listen; with Gateway, it must also be an address
// systemd's socket can bind, checked before anything is written.
func (r *InitRequest) parseListen() (string, int, error) {
	host, port, err := ParseListen(r.Listen)
	if err == nil && r.Gateway {
		_, err = ListenStream(r.Listen)
	}
	return host, port, err
}

// planUnits plans the plugin's and the gateway's units; it reports
// whether any is written or removed.
func planUnits(t *txn, r InitRequest, dropInDir string, merged *daemonconfig.Result, res *InitResult) (bool, error) {
	if err := r.checkUnitWords(mergedHosts(merged)); err != nil {
		return false, err
	}
	authz := planAuthzUnits(t, r, dropInDir, res)
	gw, err := planGatewayUnits(t, r, dropInDir, mergedHosts(merged), res)
	local := planLocalFiles(t, r, dropInDir, mergedHosts(merged), res.Local, res)
	return authz || gw || local, err
}
