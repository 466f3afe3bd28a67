package authz

import (
	"fmt"
	"strings"

	"github.com/dtls-tool/dtls/daemonconfig"
)

// hintError is an error with the command that fixes it (the command line
// prints it as "dtls: hint: ...").
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string    { return e.err.Error() }
func (e *hintError) Unwrap() error    { return e.err }
func (e *hintError) HintText() string { return e.hint }

// CheckDaemonListeners refuses a dockerd that listens on TCP without
// tlsverify (daemon.json at daemonJSON, docker.service in unitDirs): the
// plugin tells the local unix socket by the absence of a user and of a
// client certificate, and dockerd sends neither for a plain TCP caller,
// nor for a TLS one: without tlsverify it asks for no certificate
// (moby cmd/dockerd/daemon.go sets tls.RequireAndVerifyClientCert only
// then), and the user is the certificate's CN
// (pkg/authorization/middleware.go). Such callers would get what the
// policy's "unix" setting gives, everything by default. A daemon.json that cannot be read is an error too: what it
// sets is unknown.
func CheckDaemonListeners(daemonJSON string, unitDirs []string) error {
	l, err := daemonconfig.ReadListeners(daemonJSON, unitDirs)
	if err != nil {
		return &hintError{fmt.Errorf("%w: cannot tell whether dockerd takes TCP callers without a client certificate", err),
			"fix the file, or point --daemon-json at the daemon.json dockerd reads"}
	}
	bad := l.Unverified()
	if len(bad) == 0 {
		return nil
	}
	var where []string
	for _, h := range bad {
		where = append(where, fmt.Sprintf("%s (in %s)", h.Addr, h.Source))
	}
	how := "plain TCP, without TLS"
	if l.TLS {
		how = "TLS without tlsverify"
	}
	return &hintError{
		fmt.Errorf("dockerd listens on %s with %s: its callers send no client certificate, so the authorization plugin would take them for the local unix socket (the policy's \"unix\" setting, allow by default)",
			strings.Join(where, ", "), how),
		`set "tlsverify": true with "tlscacert", "tlscert" and "tlskey" in daemon.json (sudo dtls init does), or remove the host, then restart docker`}
}
