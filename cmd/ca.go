package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver"
	"github.com/dtls-tool/dtls/internal/onlineca/caserver/cahost"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/internal/sysunit"
)

func newCACmd(io IO) *cobra.Command {
	c := &cobra.Command{
		Use:   "ca",
		Short: "Run the online CA of a fleet of Docker hosts (init, serve, token)",
		Long: `The online CA keeps the CA key on one guarded machine and signs for the
whole fleet over HTTPS: hosts and developers enrol with one-time tokens
(their key is made where it is used; only a certificate request travels),
client certificates last 24 hours and are renewed by 'dtls agent' over
mutual TLS, and every host's authorization plugin follows the CA's signed
revocation list.

  dtls ca init    make the CA host's state directory and systemd unit
  dtls ca serve   serve the CA (what the unit runs)
  dtls ca token   make a one-time enrolment token for a host or a developer`,
		Example: `  # On the CA machine
  $ sudo dtls ca init --host ca.example.com
  $ sudo systemctl daemon-reload && sudo systemctl enable --now dtls-ca
  $ sudo dtls ca token --host docker1.example.com
  $ sudo dtls ca token --client alice --role developer`,
		Args: exactArgs(0, "a subcommand (init, serve, token)"),
		RunE: func(c *cobra.Command, args []string) error { return c.Help() },
	}
	c.AddCommand(newCAInitCmd(io), newCAServeCmd(io), newCATokenCmd(io))
	return c
}

func caStateDirFlag(c *cobra.Command, io IO, p *string) {
	// $DTLS_STATE_DIR as every --state-dir (README "Environment"); ca
	// init --force replaces only a directory that ca init made.
	pathFlag(c, io, p, "state-dir", "DTLS_STATE_DIR", cahost.DefaultStateDir, "the online CA's state directory")
}

type caInitOptions struct {
	IO
	StateDir       string
	Listen         string
	Hosts          []string
	URL            string
	DBURL          string
	DBURLFile      string
	ClientValidity time.Duration
	Operator       string
	Force          bool
	UnitDir        string
	// PackagedUnitDir is where the dtls package's dtls-ca.service is
	// looked for (see caUnitDir).
	PackagedUnitDir string
}

func newCAInitCmd(io IO) *cobra.Command {
	opts := &caInitOptions{IO: io}
	c := &cobra.Command{
		Use:   "init",
		Short: "Make the online CA's state directory, operator bundle and systemd unit",
		Long: `Init makes a new CA and the state directory 'dtls ca serve' runs from
(mode 0700):

  ca.pem          0644  the CA certificate
  ca-key.pem      0400  the CA key, NOT encrypted: the server signs
                        unattended, so guard this machine
  tls-cert.pem    0644  the listener's certificate, for --host
  tls-key.pem     0600
  ca.json         0600  listen address, URL, database, validities
  dtls-ca.db      0600  the SQLite inventory (without --db-url)
  operator/       0700  the first operator's bundle: ca.pem, cert.pem,
                        key.pem (0600), dtls.json with ca_url; its
                        certificate has the role ca-operator

and writes the systemd unit dtls-ca.service to --unit-dir (made, 0755,
when it does not exist), unless the dtls package installed one with the
same settings in --packaged-unit-dir (/usr/lib/systemd/system): that one
is used, and runs the CA as the user dtls.

The operator's certificate lives a client lifetime (--client-validity,
24 hours by default), as any client's: 'dtls agent --dir DIR' renews it
where it is used; once it has expired, 'dtls ca token --client NAME --role
ca-operator' on this machine makes a token for a new one.

The listener's certificate covers --host (default: this machine's names
and addresses). The URL hosts are told to use is https://FIRST-HOST:PORT
unless --url says otherwise. --db-url (or --db-url-file, a file holding
it) keeps the inventory in PostgreSQL instead, for several CA instances:
copy the state directory to each.

Everything is built in a temporary directory next to --state-dir and
renamed into place: a crash leaves no state directory, or a complete one.
An existing state directory is refused; --force replaces it (only one
that 'dtls ca init' made: it has ca.json) with a new CA, whose
certificates the old one's hosts do not trust (stop the service first).`,
		Example: `  $ sudo dtls ca init --host ca.example.com --host 10.0.0.2
  $ sudo dtls ca init --host ca.example.com --db-url-file /root/dtls-ca-db-url
  $ dtls ca init --state-dir ./ca --unit-dir ./units --host localhost --listen 127.0.0.1:8888`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if opts.ClientValidity <= 0 {
				return usagef(c, "--client-validity %s: want a positive duration", opts.ClientValidity)
			}
			if opts.DBURLFile != "" {
				if opts.DBURLFile, err = absPath("db-url-file", opts.DBURLFile); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			if opts.UnitDir != "" {
				if opts.UnitDir, err = absPath("unit-dir", opts.UnitDir); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			return runCAInit(opts)
		},
	}
	caStateDirFlag(c, io, &opts.StateDir)
	f := c.Flags()
	f.StringVar(&opts.Listen, "listen", cahost.DefaultListen, "address to serve on (every interface, on cfssl's port, by default)")
	f.StringSliceVar(&opts.Hosts, "host", nil, "DNS name or IP address of the CA for its listener's certificate, repeatable (default: this machine's names and addresses)")
	f.StringVar(&opts.URL, "url", "", "base URL hosts reach the CA at (default: https://FIRST-HOST:PORT)")
	f.StringVar(&opts.DBURL, "db-url", "", "PostgreSQL inventory, e.g. postgres://dtls@db/dtls (kept in ca.json, mode 0600)")
	f.StringVar(&opts.DBURLFile, "db-url-file", "", "file holding the PostgreSQL URL, read at each start")
	f.DurationVar(&opts.ClientValidity, "client-validity", fleet.DefaultClientValidity, "lifetime of client certificates")
	f.StringVar(&opts.Operator, "operator", cahost.DefaultOperator, "name of the first operator's certificate")
	f.BoolVar(&opts.Force, "force", false, "replace an existing state directory with a new CA")
	pathFlag(c, io, &opts.UnitDir, "unit-dir", "DTLS_SYSTEMD_DIR", cahost.DefaultUnitDir, "directory for dtls-ca.service (empty: do not write it)")
	f.StringVar(&opts.PackagedUnitDir, "packaged-unit-dir", "", "use the dtls-ca.service found here with the settings init would write instead of writing one (default: "+authority.PackagedUnitDir+" when --unit-dir is the default)")
	c.MarkFlagsMutuallyExclusive("db-url", "db-url-file")
	return c
}

// caUnitDir is where ca init writes dtls-ca.service ("" for nowhere), and
// the packaged unit it uses instead when the package installed one with
// the settings it would write. It looks in the package's directory only
// when --unit-dir is systemd's own (not a test's or another root's).
func caUnitDir(o *caInitOptions, exe string) (dir, packaged string) {
	pkgDir := o.PackagedUnitDir
	if pkgDir == "" && o.UnitDir == cahost.DefaultUnitDir {
		pkgDir = authority.PackagedUnitDir
	}
	if o.UnitDir != "" && authority.PackagedUnit(pkgDir, cahost.UnitName, sysunit.CA(exe, o.StateDir)) {
		return "", filepath.Join(pkgDir, cahost.UnitName)
	}
	return o.UnitDir, ""
}

// renderCAUnit says which unit runs the CA, and how to start it.
func renderCAUnit(o *caInitOptions, res *cahost.InitResult, packaged string) {
	switch {
	case packaged != "":
		fmt.Fprintf(o.ErrOut, "  systemd unit: %s (the package's)\n", packaged)
	case res.UnitPath != "":
		fmt.Fprintf(o.ErrOut, "  systemd unit: %s\n", res.UnitPath)
	default:
		fmt.Fprintf(o.ErrOut, "next: dtls ca serve --state-dir %s\n", res.StateDir)
		return
	}
	fmt.Fprintf(o.ErrOut, "next: systemctl daemon-reload && systemctl enable --now %s\n", cahost.UnitName)
}

func runCAInit(o *caInitOptions) error {
	hosts := o.Hosts
	if len(hosts) == 0 {
		hosts = authority.DefaultHosts()
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/local/bin/dtls"
	}
	unitDir, packaged := caUnitDir(o, exe)
	res, err := cahost.InitHost(cahost.InitOptions{
		StateDir: o.StateDir, Listen: o.Listen, Hosts: hosts, URL: o.URL,
		DBURL: o.DBURL, DBURLFile: o.DBURLFile, ClientValidity: o.ClientValidity,
		Operator: o.Operator, Force: o.Force, UnitDir: unitDir, Exe: exe, Now: o.Now(),
	})
	if errors.Is(err, cahost.ErrStateExists) {
		return withHint(err, "to serve the CA that is there: sudo systemctl start dtls-ca")
	}
	if err != nil {
		return err
	}
	fp := fleet.Fingerprint(res.CACert)
	fmt.Fprintf(o.ErrOut, "made the online CA in %s\n", res.StateDir)
	fmt.Fprintf(o.ErrOut, "  CA certificate SHA-256: %x\n", fp[:])
	fmt.Fprintf(o.ErrOut, "  URL for hosts: %s (listening on %s)\n", res.Config.URL, res.Config.Listen)
	fmt.Fprintf(o.ErrOut, "  operator bundle: %s (role %s), expires %s, %s (a client lifetime, --client-validity)\n", res.OperatorDir, fleet.OperatorRole,
		res.OperatorNotAfter.Format("2006-01-02 15:04 MST"), inDays(res.OperatorNotAfter, o.Now()))
	fmt.Fprintf(o.ErrOut, "  keep it renewed where it is used: dtls agent --dir DIR (a service, or --once from a timer); "+
		"once expired, make another here: sudo dtls ca token --client NAME --role %s, then dtls enroll it\n", fleet.OperatorRole)
	renderCAUnit(o, res, packaged)
	fmt.Fprintf(o.ErrOut, "then: dtls ca token --host HOST, or --client NAME, for each host and developer\n")
	return nil
}

type caServeOptions struct {
	IO
	StateDir string
	Listen   string
}

func newCAServeCmd(io IO) *cobra.Command {
	opts := &caServeOptions{IO: io}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the online CA over HTTPS until SIGTERM or SIGINT",
		Long: `Serve runs the online CA from the state directory 'dtls ca init' made:
enrolment with tokens, renewal over mutual TLS, the revocation list, the
CA certificate, and the operator calls (inventory, revoke, tokens) for
certificates with the role ca-operator. The inventory is the SQLite file
in the state directory, or the PostgreSQL database of ca.json.

It logs one line per request to stderr (the journal, under systemd). On
SIGTERM or SIGINT it stops accepting connections, finishes the requests
in flight (at most a minute) and exits 0. Every certificate is recorded
before it is sent, so a kill at any moment loses none.`,
		Example: `  $ sudo dtls ca serve
  $ dtls ca serve --state-dir ./ca --listen 127.0.0.1:8888`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runCAServe(opts)
		},
	}
	caStateDirFlag(c, io, &opts.StateDir)
	c.Flags().StringVar(&opts.Listen, "listen", "", "address to serve on (default: ca.json's)")
	return c
}

func runCAServe(o *caServeOptions) error {
	h, err := cahost.OpenHost(o.StateDir)
	if err != nil {
		return err
	}
	defer h.Close()
	log := slog.New(slog.NewTextHandler(o.ErrOut, nil))
	s, err := h.Server(o.Now, log)
	if err != nil {
		return err
	}
	addr := o.Listen
	if addr == "" {
		addr = h.Config.Listen
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	fmt.Fprintf(o.ErrOut, "dtls ca: serving the online CA on %s (%s)\n", ln.Addr(), h.Config.URL)
	if err := h.Serve(ctx, s, ln); err != nil {
		return fmt.Errorf("serve on %s: %w", addr, err)
	}
	fmt.Fprintf(o.ErrOut, "dtls ca: stopped\n")
	return nil
}

type caTokenOptions struct {
	IO
	StateDir string
	Client   string
	Role     string
	Host     string
	SANs     []string
	TTL      time.Duration
}

func newCATokenCmd(io IO) *cobra.Command {
	opts := &caTokenOptions{IO: io}
	c := &cobra.Command{
		Use:   "token (--client NAME [--role ROLE] | --host NAME [--san HOST]...)",
		Short: "Make a one-time enrolment token for a developer or a Docker host",
		Long: `Token makes a one-time enrolment token and prints it, alone, on stdout; on
stderr it prints the command to run where the certificate is wanted. The
token gives one certificate: for the client NAME with ROLE (readonly when
not given), or for the host NAME and its --san names and addresses. It
expires after --ttl (at most 7 days). It holds the CA certificate's
fingerprint, so the host checks that it talks to this CA.

Token writes to the CA's inventory directly, so it works while the server
is stopped. The CA keeps only a hash of the token: it cannot be shown
again; make a new one if it is lost.`,
		Example: `  $ sudo dtls ca token --client alice --role developer
  $ sudo dtls ca token --host docker1.example.com --san 10.0.0.7
  $ TOKEN=$(sudo dtls ca token --client ci --ttl 10m)`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if opts.Role != "" && opts.Client == "" {
				return usagef(c, "--role is for --client tokens")
			}
			if len(opts.SANs) > 0 && opts.Host == "" {
				return usagef(c, "--san is for --host tokens")
			}
			if opts.TTL <= 0 {
				return usagef(c, "--ttl %s: want a positive duration", opts.TTL)
			}
			return runCAToken(opts)
		},
	}
	caStateDirFlag(c, io, &opts.StateDir)
	f := c.Flags()
	f.StringVar(&opts.Client, "client", "", "client name (the certificate's common name)")
	f.StringVar(&opts.Role, "role", "", "the client's authorization role (default "+caserver.DefaultClientRole+")")
	f.StringVar(&opts.Host, "host", "", "the Docker host's name (the server certificate's first name)")
	f.StringSliceVar(&opts.SANs, "san", nil, "another DNS name or IP address of the host, repeatable")
	f.DurationVar(&opts.TTL, "ttl", fleet.DefaultTokenTTL, "how long the token can be used")
	c.MarkFlagsMutuallyExclusive("client", "host")
	c.MarkFlagsOneRequired("client", "host")
	return c
}

func runCAToken(o *caTokenOptions) error {
	h, err := cahost.OpenHost(o.StateDir)
	if err != nil {
		return err
	}
	defer h.Close()
	s, err := h.Server(o.Now, nil)
	if err != nil {
		return err
	}
	req := fleet.TokenRequest{Kind: store.KindClient, Name: o.Client, Role: o.Role,
		TTL: int64((o.TTL + time.Second - 1) / time.Second)}
	if o.Host != "" {
		req = fleet.TokenRequest{Kind: store.KindServer, Name: o.Host, Hosts: o.SANs, TTL: req.TTL}
	}
	resp, err := s.NewToken(req)
	if err != nil {
		return err
	}
	fmt.Fprintln(o.Out, resp.Token)
	what := fmt.Sprintf("host %s", o.Host)
	if len(o.SANs) > 0 {
		what += " (" + strings.Join(o.SANs, ", ") + ")"
	}
	run := fmt.Sprintf("sudo dtls init --ca-url %s --token %s", h.Config.URL, resp.Token)
	if o.Client != "" {
		role := o.Role
		if role == "" {
			role = caserver.DefaultClientRole
		}
		what = fmt.Sprintf("client %s (role %s)", o.Client, role)
		// The CA does not know which daemon the bundle is for: every
		// host enrolled with it accepts the certificate.
		run = fmt.Sprintf("dtls enroll %s %s --docker-host tcp://DOCKER-HOST:2376", h.Config.URL, resp.Token)
	}
	fmt.Fprintf(o.ErrOut, "one-time token for %s, valid until %s\n", what, resp.ExpiresAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(o.ErrOut, "run there:\n  %s\n", run)
	return nil
}
