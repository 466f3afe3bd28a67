package sysunit

// The gateway's units: the mutual-TLS front of dockerd's API
// ('dtls gateway serve'), socket-activated on Docker's TLS port.
const (
	GatewaySocketUnit  = "dtls-gateway.socket"
	GatewayServiceUnit = "dtls-gateway.service"
	// GatewayPort is Docker's TLS port (2376, IANA "docker-s").
	GatewayPort = "2376"
)

// Gateway is dtls-gateway.socket and dtls-gateway.service. The service
// runs as root for dockerd's socket (root:docker, 0660) and the state
// directory (root's, 0700): owner access, so no capability but
// CAP_DAC_READ_SEARCH, which it needs as the authorization plugin does to
// resolve any host path a container asks to mount. ProtectHome is
// read-only and /tmp not private for the same reason: host paths are
// judged as dockerd will see them, and /dev is not private either.
func Gateway(exe string) map[string][]byte {
	return map[string][]byte{
		GatewaySocketUnit: []byte(`[Unit]
Description=dtls gateway socket (mutual TLS in front of dockerd)

[Socket]
ListenStream=` + GatewayPort + `

[Install]
WantedBy=sockets.target
`),
		GatewayServiceUnit: []byte(`[Unit]
Description=dtls gateway: dockerd's API over mutual TLS, with roles
Documentation=https://github.com/dtls-tool/dtls
Requires=` + GatewaySocketUnit + `
After=` + GatewaySocketUnit + ` docker.service

[Service]
ExecStart=` + exe + ` gateway serve --listen 0.0.0.0:` + GatewayPort + ` --docker unix:///var/run/docker.sock --state-dir ` + StateDir + ` --certs-dir /etc/docker/certs --audit-log ` + LogDir + `/gateway.log
Restart=always
UMask=0077
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths=` + StateDir + ` ` + LogDir + `
LogsDirectory=dtls
LogsDirectoryMode=0700
# No PrivateDevices: a device a container asks for is a host path too.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`),
	}
}
