package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The gateway's systemd socket, as 'dtls init --gateway' writes it: the
// gateway ('dtls gateway serve') then owns the TCP port, dockerd listens on
// its local socket only.
const gatewaySocketUnit = "dtls-gateway.socket"

// gatewayConf is the gateway's socket unit as the audit sees it.
type gatewayConf struct {
	path    string   // the unit file; "" when there is none
	listen  []string // its ListenStream= values
	enabled bool     // linked into sockets.target.wants
}

// readGateway finds the gateway's socket unit in the systemd directories,
// and whether it is enabled (the link 'systemctl enable' makes, from the
// [Install] section's WantedBy=sockets.target).
func (a *auditor) readGateway() gatewayConf {
	var g gatewayConf
	g.path = findUnitFile(a.cfg.SystemdDirs, gatewaySocketUnit)
	if g.path == "" {
		return g
	}
	if b, err := os.ReadFile(g.path); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ListenStream="); ok && v != "" {
				g.listen = append(g.listen, v)
			}
		}
	}
	for _, d := range a.cfg.SystemdDirs {
		if _, err := os.Stat(filepath.Join(d, "sockets.target.wants", gatewaySocketUnit)); err == nil {
			g.enabled = true
		}
	}
	return g
}

// checkGateway reports how the gateway serves TCP: a listener the enabled
// gateway serves passes (mutual TLS and roles on every request, in front
// of a dockerd on its local socket); a gateway installed but not enabled
// leaves no remote access; dockerd listening on TCP beside it is a way
// past the gateway's roles and audit.
func (a *auditor) checkGateway(d *daemonConf, g gatewayConf) {
	if g.path == "" {
		if a.cfg.Gateway {
			a.add(Finding{ID: "gateway", Status: Warn, Title: "this host is recorded in gateway mode but " + gatewaySocketUnit + " is not installed: nothing serves TCP",
				Fix: "sudo dtls init --gateway (writes the gateway's units), or sudo dtls init (dockerd serves TCP again)"})
		}
		return
	}
	var tcp []string
	for _, h := range d.hosts {
		if isTCPHost(h) {
			tcp = append(tcp, h)
		}
	}
	listen := strings.Join(g.listen, ", ")
	switch {
	case len(g.listen) == 0:
		a.add(Finding{ID: "gateway", Status: Warn, Title: fmt.Sprintf("%s has no ListenStream=: the gateway serves nothing", g.path),
			Fix: "sudo dtls init --gateway (writes the unit again)"})
	case !g.enabled:
		a.add(Finding{ID: "gateway", Status: Warn, Title: fmt.Sprintf("the dtls gateway (%s, on %s) is installed but not enabled: no remote access", g.path, listen),
			Fix: "sudo systemctl enable --now " + gatewaySocketUnit})
	default:
		a.add(Finding{ID: "gateway", CIS: "2.7", Status: Pass,
			Title: fmt.Sprintf("TCP %s is served by the dtls gateway (%s enabled): mutual TLS and roles on every request", listen, gatewaySocketUnit)})
	}
	if len(tcp) > 0 {
		a.add(Finding{ID: "gateway-bypass", Status: Warn,
			Title:  fmt.Sprintf("dockerd itself listens on TCP (%s) beside the dtls gateway", strings.Join(tcp, ", ")),
			Detail: "clients there reach dockerd past the gateway: its roles, audit and revocation of open sessions do not apply",
			Fix:    "sudo dtls init --gateway (takes TCP out of daemon.json's \"hosts\"), then restart docker"})
	}
}

// serves reports whether the gateway is installed, enabled and listening:
// then it enforces roles on every remote call.
func (g gatewayConf) serves() bool { return g.path != "" && g.enabled && len(g.listen) > 0 }

// isTCPHost reports whether dockerd reads h as a TCP listener: tcp://, or
// a bare HOST:PORT.
func isTCPHost(h string) bool {
	return strings.HasPrefix(h, "tcp://") || !strings.Contains(h, "://")
}
