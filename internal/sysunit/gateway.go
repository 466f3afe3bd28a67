package sysunit

import "github.com/dtls-tool/dtls/internal/cahost/authority"

// The gateway's units, as the packages install them: what 'dtls init
// --gateway' writes (authority.GatewayUnits), with the packaged paths and
// Docker's TLS port on every address, so that init finds them equal to
// its own on a default host and writes no copy.
const (
	GatewaySocketUnit  = authority.GatewaySocketUnit
	GatewayServiceUnit = authority.GatewayServiceUnit
	// GatewayListen is Docker's TLS port (2376, IANA "docker-s") on every
	// address, init's default --listen.
	GatewayListen = "tcp://0.0.0.0:2376"
)

// Gateway is dtls-gateway.socket and dtls-gateway.service.
func Gateway(exe string) map[string][]byte {
	units, err := authority.GatewayUnits(authority.GatewayUnitConfig{
		Exe: exe, Listen: GatewayListen, Docker: "unix:///var/run/docker.sock",
		StateDir: StateDir, CertsDir: authority.DefaultCertsDir, AuditLog: LogDir + "/gateway.log",
	})
	if err != nil {
		// GatewayListen is a constant address: ListenStream takes it.
		panic(err)
	}
	return units
}
