package crashtest

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// gatewayUnits are the gateway's systemd units ('dtls init --gateway').
var gatewayUnits = []string{"dtls-gateway.socket", "dtls-gateway.service"}

// gatewayMode checks that one party serves TCP, as server.json's "mode"
// says: in gateway mode both of the gateway's units are in the systemd
// directory and daemon.json's "hosts" has no TCP entry; otherwise neither
// unit is there and "hosts" has one. A kill between the two halves of a
// move would leave the port to nobody, or to both.
func (c *check) gatewayMode() {
	b, err := os.ReadFile(filepath.Join(c.l.StateDir, "server.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var srv struct {
		Mode string `json:"mode"`
	}
	if err != nil || json.Unmarshal(b, &srv) != nil {
		c.addf("state/server.json unreadable: %v", err)
		return
	}
	gateway := srv.Mode == "gateway"
	for _, u := range gatewayUnits {
		_, err := os.Stat(filepath.Join(c.l.SystemdDir, u))
		if gateway && err != nil {
			c.addf("server.json records gateway mode but %s is missing: nothing serves TCP", u)
		}
		if !gateway && err == nil {
			c.addf("server.json records dockerd's own listener but %s is there: both would take the TCP port", u)
		}
	}
	d, err := os.ReadFile(c.l.DaemonJSON)
	if err != nil {
		return // daemonJSON says so
	}
	var cfg struct {
		Hosts []string `json:"hosts"`
	}
	if json.Unmarshal(d, &cfg) != nil {
		return
	}
	tcp := false
	for _, h := range cfg.Hosts {
		if strings.HasPrefix(h, "tcp://") {
			tcp = true
		}
	}
	switch {
	case gateway && tcp:
		c.addf("%s: dockerd listens on TCP in gateway mode: %v", c.rel(c.l.DaemonJSON), cfg.Hosts)
	case !gateway && !tcp:
		c.addf("%s: dockerd listens on no TCP address and the gateway is not installed: %v", c.rel(c.l.DaemonJSON), cfg.Hosts)
	}
}
