package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
	"github.com/dtls-tool/dtls/internal/dockerhost/enforce"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
)

// Default locations of the authorization plugin. The socket's base name
// (without .sock) is the plugin's name in daemon.json's
// "authorization-plugins"; dockerd finds a legacy plugin's socket in
// /run/docker/plugins (moby pkg/plugins/discovery_unix.go).
const (
	defaultAuthzSocket = "/run/docker/plugins/dtls-authz.sock"
	defaultAuthzPolicy = "/etc/dtls/authz-policy.json"
	defaultAuditLog    = "/var/log/dtls/authz.log"
)

// policyFlag is --policy, shared by the commands that read the policy.
func policyFlag(c *cobra.Command, io IO, p *string) {
	pathFlag(c, io, p, "policy", "DTLS_AUTHZ_POLICY", defaultAuthzPolicy,
		"authorization policy file (JSON); when it is the default and absent, the built-in policy")
}

// loadPolicy reads the policy file; the default path, when absent, means
// the built-in policy. Any other missing or invalid file is an error.
func loadPolicy(path string) (*authz.Policy, error) {
	if path == defaultAuthzPolicy {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return authz.DefaultPolicy(), nil
		}
	}
	return authz.LoadPolicy(path)
}

// checkRole refuses a role the policy does not define.
func checkRole(policyPath, role string) error {
	if err := authority.ValidateRole(role); err != nil {
		return err
	}
	p, err := loadPolicy(policyPath)
	if err != nil {
		return err
	}
	if !p.HasRole(role) {
		return fmt.Errorf("role %q is not defined by the policy (%s): want one of %s", role, policyPath, strings.Join(p.Roles(), ", "))
	}
	return nil
}

func newAuthzCmd(io IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "authz",
		Short: "The authorization plugin: per-user roles, revocation dockerd enforces, an audit trail",
		Long: `The dtls authorization plugin sits in dockerd's request path (Docker's
authorization plugin API): for every API call it checks the client
certificate against the inventory (a revoked or superseded certificate is
refused from the next call on, although dockerd checks no CRL:
moby#27778), decides by the holder's role, and writes one audit line.

  dtls authz serve     run the plugin (systemd starts it through a socket)
  dtls authz explain   the decision for a user, method and path, without a daemon
  dtls authz roles     the policy's roles, or what one of them may do
  dtls authz log       read the audit trail

Roles: admin (everything), developer (containers, but nothing that owns
the host: no --privileged, host namespaces, added capabilities, devices,
unconfined security options, bind mounts of /, /etc, /root, /run,
/var/run/docker.sock, /var/lib/docker), readonly (reads, but not those that
copy data out); for per-container sockets, proxy (a reverse proxy that
reads labels and events), updater (pulls and replaces containers it could
create) and ci-runner (developer with build). The built-in default role
is readonly. Build, plugins,
swarm and secrets are capabilities a role must name. More roles come from
a policy file (--policy).`,
	}
	c.AddCommand(newAuthzServeCmd(io), newAuthzExplainCmd(io), newAuthzRolesCmd(io), newAuthzLogCmd(io))
	return c
}

type authzServeOptions struct {
	IO
	Socket     string
	StateDir   string
	Policy     string
	AuditLog   string
	Mode       string
	CAURL      string
	CRLRefresh time.Duration
	DaemonJSON string
	Docker     string
	SystemdDir string
	// AuditFailure and AuditFsync: see the trail's flags (authz_trail.go).
	AuditFailure string
	AuditFsync   bool
	// protect are more host paths no role but admin may mount: the
	// gateway's sockets and recordings.
	protect []string
}

func newAuthzServeCmd(io IO) *cobra.Command {
	opts := &authzServeOptions{IO: io}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization plugin",
		Long: `Serve runs the plugin on a unix socket (--socket, mode 0600), or on the
socket systemd passes (socket activation: LISTEN_FDS), until SIGTERM.

It refuses to start when dockerd listens on TCP without tlsverify
(daemon.json --daemon-json, or -H in docker.service): dockerd sends no
user and no certificate for those callers, exactly as for the local unix
socket, so the plugin could not tell them apart.

It fails closed: a policy file that cannot be read or is invalid, or an
inventory that cannot be read, denies every TCP request with a message that
says why (the local unix socket follows the policy's "unix" setting, allow
by default, so that an admin is never locked out). The policy and the
revocations are reloaded on change, without a restart. At the default
--policy path the file is followed even when absent: created later it is
loaded, removed it gives way to the built-in policy again. An inventory
that is replaced (a backup restored, a new 'dtls init') is opened again at
the next request. --mode warn allows everything but records what enforce
would deny.

Each decision is one JSON line in --audit-log (0600, rotated at 64 MiB,
8 files kept) and on stdout, for journald, written before dockerd hears
the answer. The lines are a hash chain ('dtls authz log --verify'). When
the file cannot be written (a full disk, an I/O error) every call that
changes something is denied, saying why, and reads go on
(--audit-failure deny-writes), or every call is denied (deny-all); those
calls are recorded on stdout alone and counted in AUDIT_LOG.status, which
'dtls audit' reports. --audit-fsync waits for the disk at each record.

On a host enrolled with the fleet's online CA (dtls init --ca-url, which
records the CA in STATE_DIR/server.json; or --ca-url), the client
certificates of the fleet CA (STATE_DIR/ca.pem) are checked against the
CA's signed revocation list instead of an inventory, and their role is
the one the CA wrote in them. The list is fetched every --crl-refresh
(5s), so a certificate revoked on the CA is refused here within that
time plus one fetch; only a list the fleet CA signed, with a CRL number
not lower than the one in force, is taken. The last good list is kept in
STATE_DIR/fleet-crl.der (0644), and each fetch is recorded in
STATE_DIR/fleet-crl.json (0644) for 'dtls audit'. While the CA cannot be
reached the plugin keeps enforcing the last list it had and says so on
stderr (at once, then once a minute); after a restart it enforces the
kept list. Until it has a list, every certificate of the fleet is
denied. Other certificates are checked against this host's inventory.

dockerd must name the plugin in daemon.json: "authorization-plugins":
["dtls-authz"] (the socket's base name). It refuses to start when it
cannot reach the plugin; while the plugin is down each API call retries
for about 15 s and then fails (closed: moby pkg/plugins/client.go). Under
systemd the socket stays open while the plugin restarts, so calls wait
instead. Do not run it as
a managed plugin: 'docker plugin disable' would take it out of the chain
(moby#31930).`,
		Example: `  $ sudo dtls authz serve
  $ sudo dtls authz serve --mode warn --policy /etc/dtls/authz-policy.json
  $ sudo dtls authz serve --ca-url https://ca.example.com:8443 --crl-refresh 2s`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Mode != string(authz.ModeEnforce) && opts.Mode != string(authz.ModeWarn) {
				return usagef(c, "--mode: want enforce or warn, got %q", opts.Mode)
			}
			for _, p := range []struct {
				flag string
				v    *string
			}{{"socket", &opts.Socket}, {"state-dir", &opts.StateDir}, {"policy", &opts.Policy}, {"daemon-json", &opts.DaemonJSON}} {
				a, err := absPath(p.flag, *p.v)
				if err != nil {
					return usageError{err, c.CommandPath()}
				}
				*p.v = a
			}
			if err := authz.AuditFailure(opts.AuditFailure).Check(); err != nil {
				return usagef(c, "--audit-failure: want deny-writes or deny-all, got %q", opts.AuditFailure)
			}
			if opts.CRLRefresh < time.Second {
				return usagef(c, "--crl-refresh: want 1s or more, got %s", opts.CRLRefresh)
			}
			if u := opts.CAURL; u != "" && !strings.HasPrefix(u, "https://") {
				return usagef(c, "--ca-url: want https://HOST[:PORT], got %q", u)
			}
			return runAuthzServe(opts)
		},
	}
	pathFlag(c, io, &opts.Socket, "socket", "DTLS_AUTHZ_SOCKET", defaultAuthzSocket, "unix socket to listen on; its base name is the plugin's name")
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the inventory")
	policyFlag(c, io, &opts.Policy)
	pathFlag(c, io, &opts.AuditLog, "audit-log", "DTLS_AUDIT_LOG", defaultAuditLog, "audit trail file (JSON lines); \"-\" for stdout only")
	c.Flags().StringVar(&opts.Mode, "mode", string(authz.ModeEnforce), "enforce, or warn: allow but record what enforce would deny")
	trailServeFlags(c, opts)
	_ = c.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"enforce", "warn"}, cobra.ShellCompDirectiveNoFileComp))
	c.Flags().StringVar(&opts.CAURL, "ca-url", "", "the fleet's online CA whose revocation list to follow (default: the ca_url of --state-dir's server.json, if any)")
	c.Flags().DurationVar(&opts.CRLRefresh, "crl-refresh", fleet.DefaultCRLRefresh, "how often to fetch the fleet CA's revocation list")
	pathFlag(c, io, &opts.DaemonJSON, "daemon-json", "DTLS_DAEMON_JSON", defaultDaemonJSON, "dockerd's daemon.json: checked for a TCP host without tlsverify; its data-root, exec-root and sockets are protected, and its unix socket answers the plugin's lookups")
	c.Flags().StringVar(&opts.Docker, "docker", "", "dockerd's unix socket for the plugin's lookups of containers, volumes and networks (default: the first unix:// of daemon.json's hosts, else /var/run/docker.sock)")
	pathFlag(c, io, &opts.SystemdDir, "systemd-dir", "DTLS_SYSTEMD_DIR", "", "look for docker.service (its -H flags) only here (default: the systemd unit directories)")
	return c
}

// fleetFollower is the follower of the online CA's revocation list for
// 'authz serve', or nil on a host that is not enrolled with one.
// unitDirs are where docker.service is looked for: --systemd-dir, or
// systemd's directories.
func (o *authzServeOptions) unitDirs() []string {
	if o.SystemdDir != "" {
		return []string{o.SystemdDir}
	}
	return daemonconfig.DefaultUnitDirs
}

// enforceOptions are the options enforce.Open reads.
func (o *authzServeOptions) enforceOptions(prefix string) enforce.Options {
	return enforce.Options{
		StateDir: o.StateDir, Policy: o.Policy,
		// The default path is optional and followed: a policy written
		// there after the start is loaded, and removing it brings the
		// built-in policy back. Any other path is required (closed).
		PolicyOptional: o.Policy == defaultAuthzPolicy,
		Mode:           authz.Mode(o.Mode),
		AuditLog:       o.AuditLog, AuditFailure: authz.AuditFailure(o.AuditFailure), AuditFsync: o.AuditFsync,
		CAURL: o.CAURL, CRLRefresh: o.CRLRefresh, DaemonJSON: o.DaemonJSON, Docker: o.Docker,
		Protect: append([]string{filepath.Dir(o.Socket)}, o.protect...),
		Out:     o.Out, Log: o.ErrOut, LogPrefix: prefix, Now: o.Now,
	}
}

// openEnforcement is enforce.Open, with the hint for a fleet host that
// has no fleet CA certificate.
func openEnforcement(o *authzServeOptions, prefix string) (*enforce.Enforcement, error) {
	en, err := enforce.Open(o.enforceOptions(prefix))
	if errors.Is(err, enforce.ErrNoFleetCA) {
		return nil, hinted{err, "enrol this host first: sudo dtls init --ca-url URL --token TOKEN (or point --state-dir at its state directory)"}
	}
	return en, err
}

// startEnforcement starts the fleet follower, if any, saying so.
func startEnforcement(ctx context.Context, o *authzServeOptions, who string, en *enforce.Enforcement) {
	if en.Follower != nil {
		fmt.Fprintf(o.ErrOut, "dtls %s: %s\n", who, enforce.FollowerNote(en.Follower, o.StateDir))
	}
	en.Start(ctx)
}

func runAuthzServe(o *authzServeOptions) error {
	if err := authz.CheckDaemonListeners(o.DaemonJSON, o.unitDirs()); err != nil {
		return err
	}
	en, err := openEnforcement(o, "dtls-authz: ")
	if err != nil {
		return err
	}
	defer en.Close()
	p, err := authz.NewPlugin(en.Config)
	if err != nil {
		return err
	}
	ls, err := authzListeners(o)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	startEnforcement(ctx, o, "authz", en)
	return serveAuthz(ctx, o, p, ls)
}

// serveAuthz serves the plugin on every listener until a signal or the
// first listener that fails.
func serveAuthz(ctx context.Context, o *authzServeOptions, p *authz.Plugin, ls []net.Listener) error {
	errs := make(chan error, len(ls))
	for _, l := range ls {
		fmt.Fprintf(o.ErrOut, "dtls authz: serving on %s (mode %s)\n", l.Addr(), o.Mode)
		go func(l net.Listener) { errs <- p.Serve(l) }(l)
	}
	select {
	case <-ctx.Done():
		return p.Close()
	case err := <-errs:
		p.Close()
		return err
	}
}

// authzListeners are the sockets systemd passed, else --socket.
func authzListeners(o *authzServeOptions) ([]net.Listener, error) {
	ls, err := authz.ListenersFromSystemd()
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		l, err := authz.Listen(o.Socket)
		if err != nil {
			return nil, err
		}
		// Closing the listener removes the socket (when it is still
		// this one).
		ls = []net.Listener{l}
	}
	return ls, nil
}

type authzExplainOptions struct {
	IO
	User     string
	Method   string
	Path     string
	Body     string
	Role     string
	StateDir string
	Policy   string
}

func newAuthzExplainCmd(io IO) *cobra.Command {
	opts := &authzExplainOptions{IO: io}
	c := &cobra.Command{
		Use:   "explain USER METHOD PATH",
		Short: "Print the plugin's decision for a request, and the rule behind it",
		Long: `Explain prints what the plugin would decide for USER sending METHOD PATH
(with the JSON body in --body FILE), and the rule behind it, without a
daemon. USER's role is read from the inventory, unless --role; the policy
is --policy (the built-in one by default). USER "-" is the local unix
socket.`,
		Example: `  $ sudo dtls authz explain alice POST /v1.41/containers/create --body run.json
  $ dtls authz explain bob GET /containers/json --role readonly`,
		Args: exactArgs(3, "USER METHOD PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.User, opts.Method, opts.Path = args[0], strings.ToUpper(args[1]), args[2]
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runAuthzExplain(opts)
		},
	}
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the inventory (for USER's role)")
	policyFlag(c, io, &opts.Policy)
	c.Flags().StringVar(&opts.Body, "body", "", "file holding the request's JSON body")
	c.Flags().StringVar(&opts.Role, "role", "", "decide for this role instead of USER's recorded one")
	return c
}

func runAuthzExplain(o *authzExplainOptions) error {
	p, err := loadPolicy(o.Policy)
	if err != nil {
		return err
	}
	id := authz.Identity{User: o.User, Role: o.Role, Source: authz.SourceTCP}
	if o.User == "-" {
		id = authz.Identity{Source: authz.SourceUnix}
	} else if o.Role == "" {
		if r, err := authority.OpenReader(o.StateDir); err == nil {
			id.Role, err = r.RoleOf(o.User)
			r.Close()
			if err != nil {
				return err
			}
		}
	}
	req := authz.Request{Method: o.Method, URI: o.Path, Headers: map[string]string{"Content-Type": "application/json"}}
	if o.Body != "" {
		if req.Body, err = os.ReadFile(o.Body); err != nil {
			return fmt.Errorf("--body: %w", err)
		}
	}
	d := p.Decide(id, req)
	verdict := "deny"
	if d.Allow {
		verdict = "allow"
	}
	role := id.Role
	if role == "" {
		role = p.DefaultRole() + " (default)"
	}
	fmt.Fprintf(o.Out, "%s %s %s for %s (role %s)\n", verdict, o.Method, d.Path, o.User, role)
	fmt.Fprintf(o.Out, "rule:   %s\n", d.Rule)
	fmt.Fprintf(o.Out, "reason: %s\n", d.Reason)
	return nil
}

type authzRolesOptions struct {
	IO
	Role   string
	Policy string
}

func newAuthzRolesCmd(io IO) *cobra.Command {
	opts := &authzRolesOptions{IO: io}
	c := &cobra.Command{
		Use:   "roles [ROLE]",
		Short: "List the policy's roles, or what one of them may do",
		Long: `Roles lists the roles of the policy (--policy; the built-in one when it is
the default and absent), one line each: its base and what it is for.
With ROLE it lists what ROLE may do: its deny rules, the routes its base
and capabilities grant with the checks of their requests, its allow
rules.`,
		Example: `  $ dtls authz roles
  $ dtls authz roles updater`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef(c, "%s: want at most one ROLE", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Role = args[0]
			}
			return runAuthzRoles(opts)
		},
	}
	policyFlag(c, io, &opts.Policy)
	return c
}

func runAuthzRoles(o *authzRolesOptions) error {
	p, err := loadPolicy(o.Policy)
	if err != nil {
		return err
	}
	if o.Role != "" {
		lines := p.Describe(o.Role)
		if lines == nil {
			return fmt.Errorf("role %q is not defined by the policy (%s): want one of %s", o.Role, o.Policy, strings.Join(p.Roles(), ", "))
		}
		fmt.Fprintln(o.Out, strings.Join(lines, "\n"))
		return nil
	}
	for _, r := range p.Roles() {
		fmt.Fprintln(o.Out, p.Describe(r)[0])
	}
	return nil
}

type authzLogOptions struct {
	IO
	AuditLog string
	User     string
	Since    time.Duration
	Decision string
	Output   string
	// Verify, Head and Anchor: see the trail's flags (authz_trail.go).
	Verify bool
	Head   bool
	Anchor string
}

func newAuthzLogCmd(io IO) *cobra.Command {
	opts := &authzLogOptions{IO: io}
	c := &cobra.Command{
		Use:   "log",
		Short: "Read the plugin's audit trail",
		Long: `Log prints the audit trail the plugin wrote (--audit-log and its rotated
files, oldest first): time, user, decision, method, path and reason, or
with --output json the records as a JSON array.

--verify checks the trail's hash chain instead: each record holds the
seq after the one before it and the SHA-256 of the line before it, across
rotated files and restarts. It says where the chain starts (the genesis,
or a record whose predecessor was rotated out), and the first record
removed, changed or reordered, with its file and line (exit 1). A line cut
short by a crash is no break once the plugin has restarted and marked
it. --head prints the chain's head (SEQ sha256:HEX) to send elsewhere
each day (examples/audit-anchor); --verify --anchor "SEQ sha256:HEX"
then also shows records removed from the end, or a rewritten trail.`,
		Example: `  $ sudo dtls authz log --decision deny --since 24h
  $ sudo dtls authz log --user alice -o json | jq .
  $ sudo dtls authz log --verify
  $ sudo dtls authz log --head | logger -t dtls-anchor
  $ sudo dtls authz log --verify --anchor "$(journalctl -t dtls-anchor -o cat -n 1)"`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if opts.Output != "table" && opts.Output != "json" {
				return usagef(c, "--output: want table or json, got %q", opts.Output)
			}
			switch opts.Decision {
			case "", "allow", "deny", "warn":
			default:
				return usagef(c, "--decision: want allow, deny or warn, got %q", opts.Decision)
			}
			if opts.Anchor != "" && !opts.Verify {
				return usagef(c, "--anchor: only with --verify")
			}
			if opts.Verify || opts.Head {
				return runAuthzTrail(c, opts)
			}
			return runAuthzLog(opts)
		},
	}
	pathFlag(c, io, &opts.AuditLog, "audit-log", "DTLS_AUDIT_LOG", defaultAuditLog, "audit trail file")
	c.Flags().StringVar(&opts.User, "user", "", "only this user's records")
	windowFlag(c, &opts.Since, "since", "only records of this last window (e.g. 24h, 7d)")
	c.Flags().StringVar(&opts.Decision, "decision", "", "only allow, deny or warn records")
	_ = c.RegisterFlagCompletionFunc("decision", cobra.FixedCompletions([]string{"allow", "deny", "warn"}, cobra.ShellCompDirectiveNoFileComp))
	c.Flags().StringVarP(&opts.Output, "output", "o", "table", "output format: table or json")
	completeOutput(c)
	trailLogFlags(c, opts)
	return c
}

func runAuthzLog(o *authzLogOptions) error {
	f := authz.AuditFilter{User: o.User, Decision: o.Decision}
	if o.Since > 0 {
		f.Since = o.Now().Add(-o.Since)
	}
	recs, err := authz.ReadAudit(o.AuditLog, f)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		if recs == nil {
			recs = []authz.AuditRecord{}
		}
		b, err := json.MarshalIndent(recs, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tUSER\tDECISION\tMETHOD\tPATH\tSTATUS\tREASON")
	for _, r := range recs {
		user := r.User
		if user == "" {
			user = "(" + r.Source + ")"
		}
		status := "-"
		if r.Status != 0 {
			status = fmt.Sprint(r.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), printable(user), r.Decision,
			printable(r.Method), printable(r.Path), status, printable(r.Reason))
	}
	return tw.Flush()
}
