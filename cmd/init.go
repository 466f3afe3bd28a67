package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
)

type initOptions struct {
	IO
	Hosts          []string
	Listen         string
	DaemonJSON     string
	CertsDir       string
	StateDir       string
	SystemdDir     string
	KeyType        string
	CAValidity     time.Duration
	ServerValidity time.Duration
	DryRun         bool
	Force          bool
	Restart        bool
	CAFrom         string
	EncryptCAKey   bool
	Authz          bool
	AuthzSocket    string
	Gateway        bool
	Local          bool
	ProfileDir     string
	CAURL          string
	Token          string
	caKey          caKeyOptions
	// PackagedUnitDir is where the dtls package's units are looked for
	// (see packagedUnitDir).
	PackagedUnitDir string
	// cmdLine is the command as given, for the hint to run it as root.
	cmdLine string
}

// plainDockerPort is the IANA port of Docker without TLS ("docker"; 2376
// is "docker-s").
const plainDockerPort = 2375

func newInitCmd(io IO) *cobra.Command {
	opts := &initOptions{IO: io}
	c := &cobra.Command{
		Use:   "init",
		Short: "Create the CA and server certificate, and enable TLS in daemon.json",
		Long: `Init prepares this Docker host for remote access over mutual TLS.

It writes:
  STATE_DIR/ca.pem, ca-key.pem       the CA (key 0400, dir 0700; never in the certs dir)
  CERTS_DIR/ca.pem                   the CA certificate dockerd verifies clients with (0444)
  CERTS_DIR/server-cert.pem          this host's certificate (0444)
  CERTS_DIR/server-key.pem           its key (0400)
  DAEMON_JSON                        merged: "hosts" gets the --listen URL (and the local
                                     socket when "hosts" was absent), "tlsverify": true,
                                     "tlscacert", "tlscert", "tlskey"; every other key, the
                                     formatting, mode and owner are kept; a timestamped
                                     backup is written first
  docker.service.d/dtls-tls.conf     only when docker.service passes -H: dockerd refuses
                                     to start when "hosts" is both a flag and in daemon.json

Init is idempotent: an existing CA and server certificate are kept, unless
--force; without --listen or --host, a run keeps the listener and the
names STATE_DIR/server.json records from the last one; a server certificate that does not cover every --host, does not
chain to the CA, or expires within 30 days is re-issued. Invalid daemon.json
(or a directory, a symlink, an unreadable file) is an error and nothing is
changed. dockerd reads TLS files only at start: restart it afterwards, or
pass --restart.

With --ca-from DIR, init sets up another daemon of the fleet with the
bundle 'dtls issue-server' wrote on the CA's host (ca.pem, server-cert.pem,
server-key.pem): it checks that the certificate chains to ca.pem, matches
its key and covers every --host, installs the three files in the certs
directory and merges daemon.json. No CA is made and no CA key is kept on
this host: clients are issued on the CA's host, and one client
certificate works against every daemon.

With --ca-url URL --token TOKEN, init makes this host a member of the
fleet of an online CA ('dtls ca serve'): the server key is made here
(0400), only a certificate request is sent, with the one-time server token
from 'dtls ca token --host NAME', which sets the certificate's names; the
CA is checked against the fingerprint the token holds. The certificate,
the CA certificate (CERTS_DIR/ca.pem) and daemon.json are then installed
as above, and STATE_DIR/server.json records the CA's URL. No CA key is
ever on this host: issue-client, revoke and the other CA commands refuse,
client certificates come from the CA ('dtls enroll' on a laptop), and
'dtls renew --server' renews this host's certificate through it. The CA
is asked before anything is written: a CA that is down, or refuses the
token, changes nothing. The new key is saved first (0600, as
.NAME.enroll-key.pem next to the state directory NAME) and removed when
the certificate is installed; it stays only when the request reached the
CA and its answer was lost, or the run was killed. Run again with the
same token, the command finishes such a run (the CA answers the same
certificate for the saved key); run again on a host that is set up (with
or without --token), it keeps the certificate installed from the CA
(--force enrols again).

With --gateway, the dtls gateway ('dtls gateway serve') serves the TCP
listener instead of dockerd: init writes dtls-gateway.socket (ListenStream=
the --listen address) and dtls-gateway.service (sandboxed: no capability,
a read-only system but the state directory and the audit log's) into the
systemd directory, and takes every TCP entry out of daemon.json's "hosts"
(dockerd keeps its local socket, which the gateway forwards to; the TLS
keys stay, so a TCP host added by hand still demands a certificate). The
previous daemon.json is backed up, and STATE_DIR/server.json records the
mode. Run without --gateway on such a host, init moves back: the listener
in daemon.json, the gateway's units removed. Either way docker restarts
once (--restart: stopping the gateway first, or starting it after), and
in gateway mode certificates are reloaded by the gateway, with no restart.

With --gateway --local, the docker group is retired: daemon.json's "group"
becomes root (docker.socket gets SocketGroup=root when dockerd is
socket-activated), so dockerd's socket is root's alone, and a snippet in
--profile-dir points the other accounts' DOCKER_HOST at the gateway's
local socket, where the policy's unix_users and unix_groups give their
roles. Init names the group's members, who lose the raw socket. Run
without --local, init gives the recorded group its socket back.`,
		Example: `  $ sudo dtls init
  $ sudo dtls init --host docker.example.com --host 203.0.113.10
  $ sudo dtls init --dry-run
  $ sudo dtls init --ca-from /root/dtls-server-docker2
  $ sudo dtls init --ca-url https://ca.example.com:8443 --token dtls1.AbC...xyz.5f3e...9a --authz
  $ sudo dtls init --gateway --restart
  $ dtls init --state-dir ./ca --certs-dir ./certs --daemon-json ./daemon.json --systemd-dir ./systemd`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.validate(c); err != nil {
				return err
			}
			opts.cmdLine = commandLine(c)
			return runInit(opts)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&opts.Hosts, "host", nil, "DNS name or IP the server certificate covers (repeatable; default: those the last init recorded, else hostname, FQDN, interface addresses, localhost, 127.0.0.1)")
	f.StringVar(&opts.Listen, "listen", "", "TCP address dockerd listens on, added to \"hosts\" (default: the one the last init recorded, else "+defaultListen+")")
	pathFlag(c, io, &opts.DaemonJSON, "daemon-json", "DTLS_DAEMON_JSON", defaultDaemonJSON, "daemon.json to merge into")
	pathFlag(c, io, &opts.CertsDir, "certs-dir", "DTLS_CERTS_DIR", defaultCertsDir, "directory for the daemon's ca.pem, server-cert.pem, server-key.pem")
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "root-only directory for the CA key and records")
	pathFlag(c, io, &opts.SystemdDir, "systemd-dir", "DTLS_SYSTEMD_DIR", "", "look for docker.service only here and write the drop-in here (default: the systemd unit directories)")
	f.StringVar(&opts.KeyType, "key-type", string(pki.DefaultKeyType), "key algorithm: "+pki.KeyTypeNames())
	daysFlag(c, &opts.CAValidity, "ca-days", pki.DefaultCAValidity, "validity of a new CA certificate")
	daysFlag(c, &opts.ServerValidity, "server-days", pki.DefaultServerValidity, "validity of a new server certificate")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what would be written, with a diff of daemon.json; change nothing")
	f.BoolVar(&opts.Force, "force", false, "replace an existing CA and server certificate (every client certificate must then be re-issued)")
	f.BoolVar(&opts.Restart, "restart", false, "run 'systemctl daemon-reload' and 'systemctl restart docker' afterwards")
	f.StringVar(&opts.CAFrom, "ca-from", "", "set this host up with a server bundle made by 'dtls issue-server' on the CA's host (no CA key here)")
	f.StringVar(&opts.PackagedUnitDir, "packaged-unit-dir", "", "with --authz, use the plugin's units found here with the settings init would write instead of writing copies (default: "+authority.PackagedUnitDir+", unless --systemd-dir is set)")
	f.BoolVar(&opts.Authz, "authz", false, "install the authorization plugin (per-user roles, revocation, audit): its systemd units, and its name in daemon.json once it answers")
	f.BoolVar(&opts.Gateway, "gateway", false, "serve the TCP listener with the dtls gateway (its systemd units; dockerd keeps its local socket); without it, a gateway host moves back to dockerd's listener")
	f.BoolVar(&opts.Local, "local", false, "with --gateway: retire the docker group, dockerd's socket root's alone, local accounts through the gateway's socket (/run/dtls/docker.sock); without it, a host that had it gets its group back")
	pathFlag(c, io, &opts.ProfileDir, "profile-dir", "DTLS_PROFILE_DIR", authority.DefaultProfileDir, "with --local: where the login shells' DOCKER_HOST snippet goes")
	pathFlag(c, io, &opts.AuthzSocket, "authz-socket", "DTLS_AUTHZ_SOCKET", defaultAuthzSocket, "the plugin's socket, with --authz")
	f.BoolVar(&opts.EncryptCAKey, "encrypt-ca-key", false, "keep a new CA key encrypted (PKCS #8, scrypt, AES-256): every command that signs asks for the passphrase")
	opts.caKey.flags(c)
	f.StringVar(&opts.CAURL, "ca-url", "", "enrol this host with the online CA at this URL (https://HOST:PORT): no CA key here")
	f.StringVar(&opts.Token, "token", "", "with --ca-url: the one-time server token from 'dtls ca token --host NAME'")
	c.MarkFlagsMutuallyExclusive("ca-from", "force")
	c.MarkFlagsMutuallyExclusive("ca-from", "key-type")
	for _, other := range []string{"ca-from", "force", "encrypt-ca-key", "ca-days", "server-days"} {
		c.MarkFlagsMutuallyExclusive("ca-url", other)
	}
	completeKeyTypes(c)
	return c
}

// validate checks the flags and makes the paths absolute, before anything
// is read or written.
func (o *initOptions) validate(c *cobra.Command) error {
	if err := checkListen(o.IO, o.Listen); err != nil {
		return usageError{err, c.CommandPath()}
	}
	for _, h := range o.Hosts {
		if err := pki.ValidateHost(h); err != nil {
			return usagef(c, "--host: %v", err)
		}
	}
	if _, err := pki.ParseKeyType(o.KeyType); err != nil {
		return usagef(c, "--key-type: %v", err)
	}
	if o.CAValidity <= 0 || o.ServerValidity <= 0 {
		return usagef(c, "--ca-days and --server-days must be positive")
	}
	if err := o.absPaths(c); err != nil {
		return err
	}
	if err := o.validateCombos(c); err != nil {
		return err
	}
	return o.validateOnline(c)
}

// validateCombos refuses flags that do not go together.
func (o *initOptions) validateCombos(c *cobra.Command) error {
	if o.Restart && o.DryRun {
		return usagef(c, "--restart and --dry-run cannot be used together")
	}
	if o.Local && !o.Gateway {
		return usagef(c, "--local needs --gateway: the local socket accounts use instead of dockerd's is the gateway's")
	}
	return nil
}

// absPaths makes the path flags absolute and keeps the CA key's directory
// apart from the daemon's certificates.
func (o *initOptions) absPaths(c *cobra.Command) error {
	for _, p := range []struct {
		flag string
		v    *string
	}{{"daemon-json", &o.DaemonJSON}, {"certs-dir", &o.CertsDir}, {"state-dir", &o.StateDir}} {
		a, err := absPath(p.flag, *p.v)
		if err != nil {
			return usageError{err, c.CommandPath()}
		}
		*p.v = a
	}
	if within(o.StateDir, o.CertsDir) || within(o.CertsDir, o.StateDir) {
		return usagef(c, "--state-dir %q and --certs-dir %q overlap: the CA key must never sit with the daemon's certificates", o.StateDir, o.CertsDir)
	}
	if o.CAFrom != "" {
		a, err := absPath("ca-from", o.CAFrom)
		if err != nil {
			return usageError{err, c.CommandPath()}
		}
		o.CAFrom = a
	}
	return nil
}

// validateOnline checks --ca-url and --token.
func (o *initOptions) validateOnline(c *cobra.Command) error {
	if o.Token != "" && o.CAURL == "" {
		return usagef(c, "--token needs --ca-url, the online CA the token is for")
	}
	if o.CAURL == "" {
		return nil
	}
	var err error
	if o.CAURL, err = fleet.ParseURL(o.CAURL); err != nil {
		return usagef(c, "--ca-url: %v", err)
	}
	if o.Token != "" {
		if _, err := fleet.ParseToken(o.Token); err != nil {
			return usagef(c, "--token: %v", err)
		}
	}
	return nil
}

// checkListen checks a --listen value; "" keeps the recorded one (see
// authority.InitRequest.Listen).
func checkListen(io IO, listen string) error {
	if listen == "" {
		return nil
	}
	_, port, err := authority.ParseListen(listen)
	if err != nil {
		return err
	}
	if port == plainDockerPort {
		// IANA: 2375 is docker (plain text), 2376 docker-s (TLS).
		// Scanners look for open daemons on 2375, and the Docker CLI and
		// firewalls expect TLS on 2376. A warning, not a refusal: the
		// listener has tlsverify either way.
		fmt.Fprintf(io.ErrOut, "dtls: warning: --listen %s uses port 2375, the IANA port of plain-text Docker: use 2376, the port for Docker over TLS (--listen tcp://HOST:2376); 'dtls audit' warns about 2375\n", listen)
	}
	return nil
}

// daysFlag is a duration flag counted in days, the unit admins think in.
func daysFlag(c *cobra.Command, p *time.Duration, name string, def time.Duration, usage string) {
	// Set first: pflag records the value's String() at definition as the
	// default --help shows.
	*p = def
	c.Flags().Var(&daysValue{p}, name, usage+", in days")
}

type daysValue struct{ d *time.Duration }

func (v *daysValue) String() string {
	if v.d == nil {
		return "0"
	}
	return fmt.Sprint(int(v.d.Hours() / 24))
}
func (v *daysValue) Type() string { return "days" }
func (v *daysValue) Set(s string) error {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n <= 0 || fmt.Sprint(n) != s {
		return fmt.Errorf("%q is not a positive whole number of days", s)
	}
	*v.d = time.Duration(n) * 24 * time.Hour
	return nil
}

func runInit(o *initOptions) error {
	if o.DryRun {
		fmt.Fprintln(o.ErrOut, "dry run: nothing will be written")
	}
	req, err := initRequest(o)
	if err != nil {
		return err
	}
	opts, err := authorityOptions(o.IO, &o.caKey)
	if err != nil {
		return err
	}
	res, err := authority.Init(req, opts)
	if err != nil {
		return rootHint(err, o.cmdLine)
	}
	if o.startsPlugin(res) {
		if res, err = startPlugin(o, req, opts, res); err != nil {
			return err
		}
	}
	renderInitSteps(o, res)
	if o.DryRun {
		return renderInitDryRun(o, res)
	}
	if err := initRestart(o, res); err != nil {
		return err
	}
	renderInitLocal(o, res.Local)
	renderInitNext(o, res)
	return nil
}

// startsPlugin says whether this run starts the plugin itself: with
// --restart, on this host's systemd, for real.
func (o *initOptions) startsPlugin(res *authority.InitResult) bool {
	return res.AuthzPending && o.Restart && o.SystemdDir == "" && !o.DryRun
}

// renderInitSteps prints what init did.
func renderInitSteps(o *initOptions, res *authority.InitResult) {
	reportRecovered(o.IO, res.Recovered)
	if res.Validated {
		fmt.Fprintf(o.ErrOut, "dockerd --validate accepts the merged %s\n", o.DaemonJSON)
	}
	for _, s := range res.Steps {
		fmt.Fprintln(o.ErrOut, s)
	}
}

// initRequest is the authority.InitRequest the flags ask for.
func initRequest(o *initOptions) (authority.InitRequest, error) {
	kt, _ := pki.ParseKeyType(o.KeyType)
	now := o.Now()
	req := authority.InitRequest{
		StateDir:       o.StateDir,
		CertsDir:       o.CertsDir,
		DaemonJSON:     o.DaemonJSON,
		SystemdDir:     o.SystemdDir,
		Hosts:          o.Hosts,
		Listen:         o.Listen,
		KeyType:        kt,
		CAValidity:     o.CAValidity,
		ServerValidity: o.ServerValidity,
		CAName:         authority.DefaultCAName(now),
		DryRun:         o.DryRun,
		Force:          o.Force,
		CAFrom:         o.CAFrom,
		EncryptCAKey:   o.EncryptCAKey,
		Dockerd:        dockerdPath(o.IO),
		CAURL:          o.CAURL,
		Now:            now,
	}
	if o.Token != "" {
		tok, err := fleet.ParseToken(o.Token)
		if err != nil {
			return req, err
		}
		req.Enroll = func(csrPEM []byte) (*fleet.CertResponse, error) {
			return (&fleet.Client{URL: o.CAURL}).Enroll(context.Background(), tok, csrPEM)
		}
	}
	req.Local, req.ProfileDir = o.Local, o.ProfileDir
	if err := gatewayRequest(o, &req); err != nil {
		return req, err
	}
	if o.Authz {
		exe, err := os.Executable()
		if err != nil {
			return req, fmt.Errorf("--authz: find the dtls binary for the service: %w", err)
		}
		req.Authz, req.AuthzSocket, req.AuthzExe, req.AuthzLog = true, o.AuthzSocket, exe, defaultAuditLog
		req.PackagedUnitDir = o.packagedUnitDir()
		if _, err := os.Stat(defaultAuthzPolicy); err == nil {
			req.AuthzPolicy = defaultAuthzPolicy
		}
	}
	return req, nil
}

// initGatewayLog is the audit log of the gateway init installs: apart
// from the plugin's, as both may run on one host.
const initGatewayLog = "/var/log/dtls/gateway.log"

// gatewayRequest fills in what the gateway's units run (init --gateway).
func gatewayRequest(o *initOptions, req *authority.InitRequest) error {
	if !o.Gateway {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--gateway: find the dtls binary for the service: %w", err)
	}
	req.Gateway, req.GatewayExe, req.GatewayLog = true, exe, initGatewayLog
	if _, err := os.Stat(defaultAuthzPolicy); err == nil {
		// One policy for the plugin and the gateway.
		req.GatewayPolicy = defaultAuthzPolicy
	}
	return nil
}

// packagedUnitDir is where init looks for the package's units: the flag,
// else the package's directory, unless --systemd-dir moves init's own
// units elsewhere (a test, another root), where the host's are not the
// ones that count.
func (o *initOptions) packagedUnitDir() string {
	if o.PackagedUnitDir != "" || o.SystemdDir != "" {
		return o.PackagedUnitDir
	}
	return authority.PackagedUnitDir
}

// startPlugin starts the plugin's socket, then runs init again to
// merge its name into daemon.json now that it answers.
func startPlugin(o *initOptions, req authority.InitRequest, opts authority.Options, res *authority.InitResult) (*authority.InitResult, error) {
	for _, s := range res.Steps {
		fmt.Fprintln(o.ErrOut, s)
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", "--now", authority.AuthzSocketUnit}} {
		if err := systemctl(o.ErrOut, args...); err != nil {
			return nil, partialError{done: initDone(o) + " and the plugin's units written", step: "starting the plugin", err: err,
				run: fmt.Sprintf("sudo systemctl daemon-reload && sudo systemctl enable --now %s, then dtls init --authz again", authority.AuthzSocketUnit)}
		}
	}
	return authority.Init(req, opts)
}

// renderInitDryRun prints the drop-in and the diff of daemon.json a run
// would write.
func renderInitDryRun(o *initOptions, res *authority.InitResult) error {
	if res.DropIn != nil {
		fmt.Fprintf(o.Out, "%s", res.DropIn)
	}
	if res.DaemonJSON.Changed {
		return daemonconfig.Diff(o.Out, o.DaemonJSON, res.DaemonJSON.Old, res.DaemonJSON.New)
	}
	return nil
}

// initRestart puts what init wrote in force with --restart (systemctl),
// else says how to.
func initRestart(o *initOptions, res *authority.InitResult) error {
	why, steps := restartSteps(res)
	if len(steps) == 0 {
		if res.NeedRestart {
			fmt.Fprintln(o.ErrOut, gatewayReloads)
		}
		return nil
	}
	line := systemctlLine(steps)
	if !o.Restart {
		fmt.Fprintf(o.ErrOut, "%s: run\n  %s\n", why, line)
		return nil
	}
	if o.SystemdDir != "" {
		// systemctl reads the units from systemd's own
		// directories: --systemd-dir does not move them.
		fmt.Fprintf(o.ErrOut, "dtls: warning: --restart restarts this host's docker (%s): systemd does not read --systemd-dir %s\n", systemctlList(steps), o.SystemdDir)
	}
	for _, args := range steps {
		if err := systemctl(o.ErrOut, args...); err != nil {
			return partialError{done: initDone(o), step: "restarting docker", err: err, run: line}
		}
	}
	fmt.Fprintln(o.ErrOut, "restarted docker")
	return nil
}

// gatewayReloads is what is true of a new certificate in gateway mode.
const gatewayReloads = "the dtls gateway reloads its certificates within a second of their change: no restart of docker"

// restartSteps are the systemctl runs, in order, that put in force what
// init wrote, and why they are needed; none when nothing needs one (in
// gateway mode, a new certificate: the gateway reloads it).
func restartSteps(res *authority.InitResult) (string, [][]string) {
	gwUnits := []string{authority.GatewaySocketUnit, authority.GatewayServiceUnit}
	dockerChanged := res.DropIn != nil || (res.DaemonJSON != nil && res.DaemonJSON.Changed) || socketChanged(res)
	switch {
	case len(res.GatewayRemoved) > 0:
		// The gateway lets go of the port before dockerd takes it.
		steps := [][]string{append([]string{"disable", "--now"}, gwUnits...), {"daemon-reload"}, {"restart", "docker"}}
		if socketChanged(res) {
			steps = slices.Insert(steps, 2, []string{"restart", "docker.socket"})
		}
		return "dockerd takes the TCP port back from the gateway when it restarts", steps
	case res.Server.Mode == authority.ModeGateway:
		return gatewaySteps(res, dockerChanged)
	case !res.NeedRestart:
		return "", nil
	}
	return "dockerd reads its TLS settings only when it starts", [][]string{{"daemon-reload"}, {"restart", "docker"}}
}

// gatewaySteps are restartSteps in gateway mode: dockerd restarts only
// when its configuration changed (leaving the TCP port), before the
// gateway's socket takes the port.
func gatewaySteps(res *authority.InitResult, dockerChanged bool) (string, [][]string) {
	unitsChanged := len(res.GatewayUnits) > 0 || len(res.AuthzUnits) > 0
	if !dockerChanged && !unitsChanged {
		return "", nil
	}
	steps := [][]string{{"daemon-reload"}}
	why := "systemd reads the gateway's new units on daemon-reload"
	if socketChanged(res) {
		// systemd makes docker.socket's socket, with its SocketGroup.
		steps = append(steps, []string{"restart", "docker.socket"})
	}
	if dockerChanged {
		steps = append(steps, []string{"restart", "docker"})
		why = "dockerd leaves the TCP port to the gateway when it restarts"
		if res.Local != nil {
			why = "dockerd gives its socket its new group when it restarts"
		}
	}
	steps = append(steps, []string{"enable", "--now", authority.GatewaySocketUnit}, []string{"try-restart", authority.GatewayServiceUnit})
	return why, steps
}

// systemctlList is steps as a list, for a warning.
func systemctlList(steps [][]string) string {
	lines := make([]string, len(steps))
	for i, s := range steps {
		lines[i] = "systemctl " + strings.Join(s, " ")
	}
	return strings.Join(lines, ", ")
}

// systemctlLine is steps as one shell line.
func systemctlLine(steps [][]string) string {
	lines := make([]string, len(steps))
	for i, s := range steps {
		lines[i] = "sudo systemctl " + strings.Join(s, " ")
	}
	return strings.Join(lines, " && ")
}

// renderInitNext says what to do next.
func renderInitNext(o *initOptions, res *authority.InitResult) {
	if res.AuthzPending {
		fmt.Fprintf(o.ErrOut, "next: start the plugin (sudo systemctl daemon-reload && sudo systemctl enable --now %s), then run 'dtls init --authz' again: it names the plugin in daemon.json once it answers\n", authority.AuthzSocketUnit)
	}
	switch {
	case res.Server.CAURL != "":
		// No CA key here: the online CA signs for every host and client.
		fmt.Fprintf(o.ErrOut, "next: on the CA's host, make a token per developer (sudo dtls ca token --client NAME --role ROLE); each runs\n")
		fmt.Fprintf(o.ErrOut, "  dtls enroll %s TOKEN --docker-host %s\n", res.Server.CAURL, res.Server.DockerHost)
		fmt.Fprintf(o.ErrOut, "renew this host's certificate through the CA with 'sudo dtls renew --server' (%s)\n", afterServerRenewal(res.Server.Mode))
	case o.CAFrom != "":
		// No CA key here: clients are issued where the CA is, and one
		// client certificate works against every daemon of the fleet.
		fmt.Fprintf(o.ErrOut, "next: issue client certificates on the CA's host (sudo dtls issue-client NAME there); they connect to this daemon at %s\n", res.Server.DockerHost)
	default:
		fmt.Fprintf(o.ErrOut, "next: sudo dtls issue-client NAME   (clients will connect to %s)\n", res.Server.DockerHost)
	}
}

// afterServerRenewal says what puts a renewed server certificate in
// force in mode.
func afterServerRenewal(mode string) string {
	if mode == authority.ModeGateway {
		return "the gateway reloads it within a second"
	}
	return "then restart docker"
}

// initDone says what a finished init wrote, for an error in a later step.
func initDone(o *initOptions) string {
	return fmt.Sprintf("set up TLS (certificates in %s, %s merged)", o.CertsDir, o.DaemonJSON)
}

// rootHint adds the command to run as root to a permission error of a
// command run without root (init writes /var/lib/dtls and /etc/docker).
func rootHint(err error, cmdLine string) error {
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		return withHint(err, "run it as root: sudo %s", cmdLine)
	}
	return err
}

// systemctl runs systemctl with args, its output to w.
func systemctl(w io.Writer, args ...string) error {
	cmd := exec.Command("systemctl", args...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// dockerdPath is the dockerd that checks a merged daemon.json
// ($DTLS_DOCKERD, else dockerd on PATH), or "" when there is none.
func dockerdPath(io IO) string {
	if d := io.Getenv("DTLS_DOCKERD"); d != "" {
		return d
	}
	d, err := exec.LookPath("dockerd")
	if err != nil {
		return ""
	}
	return d
}

func restartDocker(errOut io.Writer) error {
	for _, args := range [][]string{{"daemon-reload"}, {"restart", "docker"}} {
		cmd := exec.Command("systemctl", args...)
		cmd.Stdout, cmd.Stderr = errOut, errOut
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("systemctl %s: %w", strings.Join(args, " "), err)
		}
	}
	fmt.Fprintln(errOut, "restarted docker")
	return nil
}

// socketChanged says whether docker.socket's drop-in was written or
// removed (init --local on a socket-activated dockerd, or its undo).
func socketChanged(res *authority.InitResult) bool {
	return res.Local != nil && res.Local.SocketDropIn != ""
}

// renderInitLocal says what init --local (or its undo) changes for whom.
func renderInitLocal(o *initOptions, lc *authority.LocalChange) {
	if lc == nil {
		return
	}
	members := "none"
	if len(lc.Members) > 0 {
		members = strings.Join(lc.Members, ", ")
	}
	if lc.Undone {
		fmt.Fprintf(o.ErrOut, "local: dockerd's socket has group %s again once docker restarts: its members (%s) are root-equivalent again\n", lc.Group, members)
		return
	}
	fmt.Fprintf(o.ErrOut, "local: dockerd's socket is root's alone once docker restarts: group %s no longer reaches it\n", lc.Group)
	fmt.Fprintf(o.ErrOut, "  its members, root-equivalent until now: %s\n", members)
	profile := ""
	if o.ProfileDir != "" {
		profile = fmt.Sprintf(" (set for login shells by %s)", filepath.Join(o.ProfileDir, authority.LocalProfile))
	}
	fmt.Fprintf(o.ErrOut, "  they use the gateway's socket: DOCKER_HOST=%s%s, or a Docker context: docker context create local --docker host=%s\n",
		authority.LocalDockerHost, profile, authority.LocalDockerHost)
	first := "NAME"
	if len(lc.Members) > 0 {
		first = strings.TrimSuffix(lc.Members[0], " (primary group)")
	}
	fmt.Fprintf(o.ErrOut, "  with the role the policy gives each: sudo dtls role --unix-user %s developer (or --unix-group GROUP): an account it does not name is denied\n", first)
	fmt.Fprintf(o.ErrOut, "  undo: sudo dtls init --gateway (without --local) gives group %s the socket back\n", lc.Group)
}
