package cmd

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
)

// pluginOptions locate this host's daemon.json and the authorization
// plugin's socket, for the commands whose effect depends on whether
// dockerd asks the plugin: a revocation, a role.
type pluginOptions struct {
	DaemonJSON  string
	AuthzSocket string
}

func (p *pluginOptions) flags(c *cobra.Command, io IO) {
	pathFlag(c, io, &p.DaemonJSON, "daemon-json", "DTLS_DAEMON_JSON", defaultDaemonJSON, "this host's daemon.json, read to tell whether it names the authorization plugin")
	pathFlag(c, io, &p.AuthzSocket, "authz-socket", "DTLS_AUTHZ_SOCKET", defaultAuthzSocket, "the authorization plugin's socket; its base name is the plugin's name in daemon.json")
}

// name is the plugin's name in daemon.json.
func (p *pluginOptions) name() string {
	return strings.TrimSuffix(filepath.Base(p.AuthzSocket), ".sock")
}

// enforced reports whether daemon.json names the plugin. A daemon.json
// that cannot be read counts as not naming it (the warning stays), and
// the reason is printed.
func (p *pluginOptions) enforced(io IO) bool {
	ok, err := authority.AuthzEnforced(p.DaemonJSON, p.AuthzSocket)
	if err != nil {
		fmt.Fprintf(io.ErrOut, "dtls: warning: %v\n", err)
	}
	return ok
}

// warnRoleNotEnforced says, when this host's dockerd does not ask the
// plugin, that a role recorded for names is not enforced yet: every
// client certificate has full access until the plugin is installed.
func (p *pluginOptions) warnRoleNotEnforced(io IO, names []string, role string) {
	if p.enforced(io) {
		return
	}
	fmt.Fprintf(io.ErrOut, "dtls: warning: role %s of %s is recorded but not enforced: %s names no authorization plugin %q, so dockerd gives every client certificate full access; "+
		"install the plugin with 'sudo dtls init --authz' (it runs 'dtls authz serve' and names it in daemon.json), then restart docker\n",
		role, strings.Join(names, ", "), p.DaemonJSON, p.name())
}
