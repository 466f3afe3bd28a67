package cmd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/gateway"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
)

// defaultGatewayListen is Docker's TLS port (IANA docker-s).
const defaultGatewayListen = "tcp://0.0.0.0:2376"

func newGatewayCmd(io IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "gateway",
		Short: "The gateway: mutual TLS in front of dockerd, one decision per request",
		Long: `The dtls gateway owns the Docker host's TCP port instead of dockerd:
dockerd listens on its unix socket only, and the gateway terminates mutual
TLS, identifies the caller of every request by its client certificate,
decides with the same policy engine as the authorization plugin (roles,
policy file, warn mode, audit trail), and forwards what it allowed over
its own connections to dockerd's socket. It also serves the host's own
accounts on a local unix socket (known by their peer credentials, with
the roles of the policy's unix_users and unix_groups) and containers on
sockets of their own ('dtls gateway socket'), in place of the docker
group and a mounted /var/run/docker.sock.

  dtls gateway serve    run the gateway
  dtls gateway socket   per-container sockets: add, ls, rm`,
	}
	c.AddCommand(newGatewayServeCmd(io), newGatewaySocketCmd(io))
	return c
}

type gatewayServeOptions struct {
	authzServeOptions
	Listen   []string
	CertsDir string
	MaxBody  int64
	sessionsServeOptions
	localOptions
}

func newGatewayServeCmd(io IO) *cobra.Command {
	opts := &gatewayServeOptions{authzServeOptions: authzServeOptions{IO: io}}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway",
		Long: `Serve listens on each --listen address (or on the TCP sockets systemd
passes: socket activation, LISTEN_FDS), with mutual TLS from --certs-dir
(server-cert.pem, server-key.pem, and ca.pem, the CA bundle client
certificates must chain to), until SIGTERM.

Every request is decided on its own, not once per connection: the first
client certificate is looked up in the inventory (or the fleet CA's
revocation list on a fleet host) each time, so a kept-alive connection is
checked again at each request. Connections whose certificate is revoked
are closed within a second, exec and attach streams included, with an
audit record. The TLS files are reloaded when they change ('dtls renew
--server', each 'rotate-ca' step): new connections get them at once, open
ones keep theirs, dockerd is not restarted.

Only whole requests the gateway parsed and decided are forwarded, one
decision each: the JSON bodies the policy reads (creates, exec, network
connect, ...) are read in full, chunked or not, up to 4 MiB (larger:
denied, 413), and exactly those bytes go to dockerd. Other bodies (docker
cp, build contexts, image loads) stream after the decision. dockerd sees
every forwarded request as root on its unix socket: the gateway's decision
is the only one, so dockerd must not also listen on TCP.

It fails closed: an unreadable inventory or policy denies every request
(see 'dtls authz serve'); a gateway that stops takes remote access down
and nothing else. --mode warn forwards what enforce would deny, records
it as warn, and cuts no open connection. Each request is one JSON line in
--audit-log (the plugin's format, with issuer, duration and bytes) and on
stdout.

Every exec and attach stream is recorded in --sessions-dir (see 'dtls
sessions'): output by default, input too with --record-input. When a
recording cannot be written, --sessions-on-failure refuse (the default)
refuses the stream before it starts (503) and cuts it if a write fails on
the way; continue lets it go on unrecorded, with an audit record saying
so. --sessions-max-age and --sessions-max-size remove the oldest
recordings, at start and before each new one.

The gateway also serves --local-socket (/run/dtls/docker.sock; "" for
none) for the host's own accounts, without TLS: each connection is known
by its peer credentials (SO_PEERCRED: uid, gid, pid, read by the kernel at
connect), as "unix:USER", and the policy's unix_users and unix_groups
give its role; an account they do not name is denied, uid 0 included
(root has dockerd's own socket). The socket is 0666 in a 0755 directory:
every account may connect, the policy decides. A connection passed to
another process keeps its first owner's identity. The per-container
sockets of 'dtls gateway socket add' are made in --sockets-dir (0700)
and followed while the gateway runs. A symbolic link, a file or a live
socket at a socket's path stops the gateway from starting, naming it.`,
		Example: `  $ sudo dtls gateway serve
  $ sudo dtls gateway serve --listen tcp://10.0.0.5:2376 --mode warn
  $ DOCKER_HOST=unix:///run/dtls/docker.sock docker ps`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runGatewayServe(opts)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&opts.Listen, "listen", []string{defaultGatewayListen}, "address to listen on, tcp://HOST:PORT (repeatable)")
	f.StringVar(&opts.Docker, "docker", "unix:///var/run/docker.sock", "dockerd's unix socket")
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the inventory")
	pathFlag(c, io, &opts.CertsDir, "certs-dir", "DTLS_CERTS_DIR", defaultCertsDir, "directory of the server certificate, its key and the CA bundle")
	policyFlag(c, io, &opts.Policy)
	pathFlag(c, io, &opts.AuditLog, "audit-log", "DTLS_AUDIT_LOG", defaultAuditLog, "audit trail file (JSON lines); \"-\" for stdout only")
	f.StringVar(&opts.Mode, "mode", string(authz.ModeEnforce), "enforce, or warn: allow but record what enforce would deny")
	f.StringVar(&opts.CAURL, "ca-url", "", "the fleet's online CA whose revocation list to follow (default: the ca_url of --state-dir's server.json, if any)")
	f.DurationVar(&opts.CRLRefresh, "crl-refresh", fleet.DefaultCRLRefresh, "how often to fetch the fleet CA's revocation list")
	pathFlag(c, io, &opts.DaemonJSON, "daemon-json", "DTLS_DAEMON_JSON", defaultDaemonJSON, "dockerd's daemon.json: its data-root, exec-root and sockets are protected paths")
	f.Int64Var(&opts.MaxBody, "max-body", gateway.DefaultMaxBody, "largest JSON body read to decide on, in bytes")
	trailServeFlags(c, &opts.authzServeOptions)
	sessionsServeFlags(c, io, &opts.sessionsServeOptions)
	localFlags(c, io, &opts.localOptions, true)
	return c
}

// validate checks the flags and makes the paths absolute.
func (o *gatewayServeOptions) validate() error {
	if err := o.validateEngine(); err != nil {
		return err
	}
	for _, l := range o.Listen {
		if _, err := tcpAddr(l); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(o.Docker, "unix://") {
		return fmt.Errorf("--docker: want unix:///PATH, got %q", o.Docker)
	}
	if err := o.sessionsServeOptions.validate(); err != nil {
		return err
	}
	if err := o.localOptions.validate(); err != nil {
		return err
	}
	for _, p := range []struct {
		flag string
		v    *string
	}{{"state-dir", &o.StateDir}, {"certs-dir", &o.CertsDir}, {"policy", &o.Policy}, {"daemon-json", &o.DaemonJSON}} {
		a, err := absPath(p.flag, *p.v)
		if err != nil {
			return err
		}
		*p.v = a
	}
	// The directory of the plugin's socket is protected from mounts
	// (enforce.Open); the gateway's own is the certificates' directory,
	// with its server key.
	o.Socket = filepath.Join(o.CertsDir, authority.ServerKeyFile)
	return nil
}

// validateEngine checks the flags the gateway shares with authz serve.
func (o *gatewayServeOptions) validateEngine() error {
	if o.Mode != string(authz.ModeEnforce) && o.Mode != string(authz.ModeWarn) {
		return fmt.Errorf("--mode: want enforce or warn, got %q", o.Mode)
	}
	if err := authz.AuditFailure(o.AuditFailure).Check(); err != nil {
		return fmt.Errorf("--audit-failure: want deny-writes or deny-all, got %q", o.AuditFailure)
	}
	if o.CRLRefresh < time.Second {
		return fmt.Errorf("--crl-refresh: want 1s or more, got %s", o.CRLRefresh)
	}
	return nil
}

// tcpAddr is HOST:PORT of a tcp:// address.
func tcpAddr(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "tcp" || u.Host == "" || u.Port() == "" || u.Path != "" {
		return "", fmt.Errorf("--listen: want tcp://HOST:PORT, got %q", s)
	}
	return u.Host, nil
}

func runGatewayServe(o *gatewayServeOptions) error {
	en, err := openEnforcement(&o.authzServeOptions, "dtls-gateway: ")
	if err != nil {
		return err
	}
	defer en.Close()
	engine, err := authz.NewEngine(en.Config)
	if err != nil {
		return err
	}
	ls, err := gatewayListeners(o)
	if err != nil {
		return err
	}
	g, err := gateway.New(gateway.Config{
		Listeners:    ls,
		DockerSocket: strings.TrimPrefix(o.Docker, "unix://"),
		CertFile:     filepath.Join(o.CertsDir, authority.ServerCertFile),
		KeyFile:      filepath.Join(o.CertsDir, authority.ServerKeyFile),
		CAFile:       filepath.Join(o.CertsDir, authority.CACertFile),
		Engine:       engine,
		MaxBody:      o.MaxBody,
		Recording:    o.recording(),
		LocalSocket:  o.LocalSocket,
		SocketsDir:   o.SocketsDir,
		SocketsFile:  filepath.Join(o.StateDir, gateway.SocketsFileName),
	})
	if err != nil {
		closeAll(ls)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	startEnforcement(ctx, &o.authzServeOptions, "gateway", en)
	for _, l := range ls {
		fmt.Fprintf(o.ErrOut, "dtls gateway: serving on %s for %s (mode %s)\n", l.Addr(), o.Docker, o.Mode)
	}
	if o.LocalSocket != "" {
		fmt.Fprintf(o.ErrOut, "dtls gateway: serving local users on unix://%s (mode %s)\n", o.LocalSocket, o.Mode)
	}
	go func() { <-ctx.Done(); g.Close() }()
	return g.Serve()
}

// gatewayListeners are the TCP sockets systemd passed, else --listen.
func gatewayListeners(o *gatewayServeOptions) ([]net.Listener, error) {
	ls, err := authz.TCPListenersFromSystemd()
	if err != nil || len(ls) > 0 {
		return ls, err
	}
	for _, a := range o.Listen {
		host, _ := tcpAddr(a)
		l, err := net.Listen("tcp", host)
		if err != nil {
			closeAll(ls)
			return nil, fmt.Errorf("--listen %s: %w", a, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}
