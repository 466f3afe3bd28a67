// Package sysunit owns the systemd units the dtls .deb and .rpm install,
// built from the code that writes them on a host without the package
// ('dtls init --authz' writes authority.AuthzUnits, 'dtls ca init'
// cahost.Unit), with the packaged paths: the two cannot diverge, and
// init finds the packaged unit equal to its own and writes no copy
// (authority.PackagedUnit). The units no command writes (the renewal
// timer, the laptop agent, the gateway) are defined here, and the
// examples/ copies are checked against them.
//
// Installing the package enables none of them: an admin does, with
// systemctl enable --now NAME.
package sysunit

import (
	"path/filepath"
	"sort"
	"strings"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver/cahost"
)

// The packaged paths.
const (
	// Exe is the dtls binary the packages install.
	Exe = "/usr/bin/dtls"
	// UserUnitDir holds the packaged user units (systemctl --user).
	UserUnitDir = "/usr/lib/systemd/user"
	// User is the system user the packages make for the services that
	// need no root (the online CA).
	User = "dtls"
	// StateDir, ConfigDir and LogDir are dtls's directories on a host.
	StateDir  = authority.DefaultStateDir
	ConfigDir = "/etc/dtls"
	LogDir    = "/var/log/dtls"
	// AuthzSocket and AuditLog are 'dtls init --authz' defaults.
	AuthzSocket = "/run/docker/plugins/dtls-authz.sock"
	AuditLog    = LogDir + "/authz.log"
)

// packagedHeader replaces the first comment lines of a unit the package
// installs: no command wrote it, and installing enabled nothing.
func packagedHeader(name string) string {
	enable := "sudo systemctl enable --now "
	switch name {
	case authority.AuthzServiceUnit, authority.AuthzSocketUnit:
		// 'dtls init --authz' starts it and names it in daemon.json.
		enable += authority.AuthzSocketUnit + ", then sudo dtls init --authz"
	case GatewayServiceUnit:
		enable += GatewaySocketUnit
	case RenewService:
		enable += RenewTimer
	case AgentUnit:
		enable = "systemctl --user enable --now " + name + " (as the developer)"
	default:
		enable += name
	}
	return "# Installed by the dtls package; installing enabled nothing.\n# Enable: " + enable + "\n"
}

// withHeader replaces the leading comment lines of unit with header.
func withHeader(unit []byte, header string) []byte {
	lines := strings.SplitAfter(string(unit), "\n")
	i := 0
	for i < len(lines) && strings.HasPrefix(lines[i], "#") {
		i++
	}
	return []byte(header + strings.Join(lines[i:], ""))
}

// System is every system unit of the packages, by file name, for
// /usr/lib/systemd/system.
func System() map[string][]byte {
	units := authority.AuthzUnits(Exe, AuthzSocket, StateDir, AuditLog, "", "")
	units[cahost.UnitName] = CA(Exe, cahost.DefaultStateDir)
	for n, u := range Renew(Exe) {
		units[n] = u
	}
	for n, u := range Gateway(Exe) {
		units[n] = u
	}
	for n, u := range units {
		units[n] = withHeader(u, packagedHeader(n))
	}
	return units
}

// UserUnits is every user unit of the packages, by file name, for
// UserUnitDir.
func UserUnits() map[string][]byte {
	return map[string][]byte{AgentUnit: withHeader(Agent(Exe), packagedHeader(AgentUnit))}
}

// Names is the sorted file names of units.
func Names(units map[string][]byte) []string {
	names := make([]string, 0, len(units))
	for n := range units {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CA is dtls-ca.service as the package installs it: cahost.Unit, which
// 'dtls ca init' writes, run as the User rather than root when the state
// directory is under /var/lib. The online CA needs no privilege: it
// listens on an unprivileged port (8888) and reads and writes only its
// state directory, which systemd hands to the user at each start
// (StateDirectory=, systemd.exec(5): "ownership is recursively changed"),
// so that a 'dtls ca init' run as root needs no chown.
func CA(exe, stateDir string) []byte {
	unit := string(cahost.Unit(exe, stateDir))
	rel, ok := strings.CutPrefix(filepath.Clean(stateDir), "/var/lib/")
	if !ok || rel == "" || strings.Contains(rel, "/") {
		return []byte(unit)
	}
	return []byte(strings.Replace(unit, "[Service]\n", "[Service]\n"+
		"# The CA needs no root: it runs as "+User+", and systemd gives it the\n"+
		"# state directory at each start.\n"+
		"User="+User+"\nGroup="+User+"\nStateDirectory="+rel+"\nStateDirectoryMode=0700\n", 1))
}
