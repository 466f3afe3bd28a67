package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/dockerhost/audit"
)

// exitAuditFail is the exit code of an audit with at least one FAIL.
const exitAuditFail = 3

// auditFailed is returned by audit when a finding is FAIL; Run maps it to
// exit code 3 through ExitCode.
type auditFailed struct{ fails int }

func (e auditFailed) Error() string {
	return fmt.Sprintf("audit found %d FAIL finding%s", e.fails, map[bool]string{true: "", false: "s"}[e.fails == 1])
}

// ExitCode is the process exit code for this error.
func (e auditFailed) ExitCode() int { return exitAuditFail }

type auditOptions struct {
	IO
	DaemonJSON    string
	CertsDir      string
	StateDir      string
	SystemdDir    string
	Socket        string
	DockerHost    string
	CertPath      string
	GroupFile     string
	PasswdFile    string
	ExpiryWarning time.Duration
	Hosts         []string
	Output        string
	// Remote: the daemon at DockerHost is not on this machine.
	Remote bool
	// AuditLog, AuditdRulesDir, WriteRules: see audit_host.go.
	AuditLog       string
	AuditdRulesDir string
	WriteRules     string
}

func newAuditCmd(io IO) *cobra.Command {
	opts := &auditOptions{IO: io}
	c := &cobra.Command{
		Use:   "audit",
		Short: "Check this host's Docker socket, daemon configuration and TLS files",
		Long: `Audit checks this Docker host against the rules dtls is built on and prints
one line per finding: PASS, WARN, FAIL, or SKIP (could not be checked, and
why), with the CIS Docker Benchmark v1.6.0 id where there is one and the
command that fixes it.

It checks:
  the socket        owned root:docker, mode 0660 or stricter (CIS 3.15, 3.16);
                    the members of group docker (primary group too), and
                    the users and groups a POSIX ACL on it lets in (Linux),
                    each of whom is root
  the daemon        daemon.json and docker.service's flags: every TCP listener
                    has tlsverify (CIS 2.7), no port 2375, no setting both as a
                    flag and in the file, no ignored singular "host" key,
                    authorization plugins (CIS 2.12)
  files             docker.service and docker.socket root:root 0644 (3.1-3.4),
                    /etc/docker (3.5, 3.6), daemon.json (3.17, 3.18), CA and
                    server certificate root:root 0444 (3.9-3.12), server key
                    root:root 0400 (3.13, 3.14), the CA key not in the certs
                    directory and readable only by its owner
  certificates      expiry (--expiry-warning), names (--host), chain to the
                    CA, key match, serverAuth, no SHA-1, RSA of 2048 bits or more
  fleet CRL         on a host enrolled with an online CA (server.json's
                    ca_url): the authorization plugin's revocation list
                    (STATE_DIR/fleet-crl.json) is fresh; WARN after a failed
                    fetch, FAIL when the CA has not been reached for three
                    refresh intervals or the plugin never had a list
  auditd            the watches CIS 1.1.3-1.1.18 ask for (dockerd, containerd,
                    their shims and runc at their real paths, /var/lib/docker,
                    /etc/docker, the units, /run/containerd, daemon.json, ...)
                    and of dtls's state and policy: the rules loaded in the
                    kernel (auditctl -l), else --auditd-rules-dir's *.rules;
                    --write-auditd-rules DIR writes them (and audits nothing)
  audit trail       the authorization plugin's (--audit-log): writable or
                    failing (calls denied for it), and its hash chain whole;
                    plugin mode records no exec or attach session (WARN)
  the daemon itself through its socket (--docker-host): version against
                    CVE-2024-41110 and CVE-2026-34040, seccomp (2.17),
                    AppArmor/SELinux, user namespaces or rootless (2.9), and
                    every container that mounts the socket (5.32)

A remote audit (--docker-host tcp://HOST:PORT, with --cert-path BUNDLE for
TLS, from a machine that is not the Docker host) checks only what the
network shows: the daemon's version and CVEs, its security options and
containers, and the server certificate it presents, against the bundle's
CA and HOST. The first finding says that the host checks were skipped. An
audit is remote when --docker-host is tcp:// and none of --daemon-json,
--certs-dir, --state-dir, --systemd-dir or --socket (nor their DTLS_*
variables) is given: give them to check this machine's files as well (a
daemon asked through its own TCP listener).

--certs-dir, when given, is where the CA certificate, server certificate
and key are read, whatever directory daemon.json names (under the file
names daemon.json gives, else ca.pem, server-cert.pem, server-key.pem).

Audit changes nothing. Without root it checks what it can read and reports
the rest as SKIP. With --output json it prints only JSON on stdout:
{"findings": [{"id", "cis", "status", "title", "detail", "fix"}, ...],
 "summary": {"pass", "warn", "fail", "skip"}}.

Exit codes: 0 when no finding is FAIL (WARN and SKIP included), 3 when at
least one is FAIL, 2 on a usage error, 1 when the audit could not run.`,
		Example: `  $ sudo dtls audit
  $ sudo dtls audit --output json | jq '.findings[] | select(.status == "FAIL")'
  $ dtls audit --daemon-json ./daemon.json --certs-dir ./certs --state-dir ./ca --socket /tmp/d/docker.sock
  $ sudo dtls audit --expiry-warning 60d --host docker.example.com
  $ dtls audit --docker-host tcp://docker.example.com:2376 --cert-path ~/.docker/dtls/docker.example.com`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.validate(c); err != nil {
				return err
			}
			if opts.WriteRules != "" {
				return runWriteAuditdRules(opts)
			}
			return runAudit(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.DaemonJSON, "daemon-json", "DTLS_DAEMON_JSON", defaultDaemonJSON, "daemon.json to check")
	pathFlag(c, io, &opts.CertsDir, "certs-dir", "DTLS_CERTS_DIR", "", "the daemon's certs directory, read instead of the one daemon.json names (default: daemon.json's \"tlscacert\", \"tlscert\", \"tlskey\", else "+defaultCertsDir+")")
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "dtls's state directory (the CA key, and the hosts init issued the server certificate for)")
	pathFlag(c, io, &opts.SystemdDir, "systemd-dir", "DTLS_SYSTEMD_DIR", "", "look for docker.service only here (default: the systemd unit directories)")
	f.StringVar(&opts.Socket, "socket", "", "the daemon's unix socket (default: the unix:// entry of \"hosts\", else "+audit.DefaultSocket+")")
	f.StringVar(&opts.DockerHost, "docker-host", "", "where to ask the Engine API: unix:///PATH or tcp://HOST:PORT (default: unix://SOCKET)")
	f.StringVar(&opts.CertPath, "cert-path", "", "client bundle (ca.pem, cert.pem, key.pem) for a tcp:// --docker-host with TLS")
	_ = c.MarkFlagDirname("cert-path")
	f.StringVar(&opts.GroupFile, "group-file", audit.DefaultGroup, "group database to read group docker from")
	_ = f.MarkHidden("group-file")
	f.StringVar(&opts.PasswdFile, "passwd-file", audit.DefaultPasswd, "user database to read primary groups from")
	_ = f.MarkHidden("passwd-file")
	// The default is set before the flag is defined: pflag records the
	// value's String() at definition as the default --help shows.
	opts.ExpiryWarning = 30 * 24 * time.Hour
	c.Flags().Var(&expiryValue{&opts.ExpiryWarning}, "expiry-warning", "warn about certificates expiring within this time: 30d, or a duration such as 72h")
	f.StringArrayVar(&opts.Hosts, "host", nil, "a name or address clients use, which the server certificate must cover (repeatable; default: the hosts dtls init recorded, else this host's names and addresses)")
	f.StringVarP(&opts.Output, "output", "o", "table", "output format: table or json")
	completeOutput(c)
	hostAuditFlags(c, io, opts)
	return c
}

// hostPathFlags are audit's flags (and their variables) that name this
// machine's Docker files: given with a tcp:// --docker-host, they make the
// audit check this machine too.
var hostPathFlags = []struct{ flag, env string }{
	{"daemon-json", "DTLS_DAEMON_JSON"}, {"certs-dir", "DTLS_CERTS_DIR"}, {"state-dir", "DTLS_STATE_DIR"},
	{"systemd-dir", "DTLS_SYSTEMD_DIR"}, {"socket", ""},
}

// expiryValue is a duration flag that also takes whole days ("30d").
type expiryValue struct{ d *time.Duration }

func (v *expiryValue) String() string {
	if v.d == nil {
		return "30d"
	}
	if *v.d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", *v.d/(24*time.Hour))
	}
	return v.d.String()
}
func (v *expiryValue) Type() string { return "duration" }
func (v *expiryValue) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("%q is not a number of days such as 30d", s)
		}
		*v.d = time.Duration(days) * 24 * time.Hour
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not 30d or a duration such as 72h", s)
	}
	*v.d = d
	return nil
}

// validate checks the flags, makes the paths absolute and decides whether
// the audit is remote.
func (o *auditOptions) validate(c *cobra.Command) error {
	if o.Output != "table" && o.Output != "json" {
		return usagef(c, "--output: %q is not table or json", o.Output)
	}
	for _, p := range []struct {
		flag string
		v    *string
	}{{"daemon-json", &o.DaemonJSON}, {"certs-dir", &o.CertsDir}, {"state-dir", &o.StateDir}, {"systemd-dir", &o.SystemdDir}, {"socket", &o.Socket}} {
		if *p.v == "" {
			continue
		}
		a, err := absPath(p.flag, *p.v)
		if err != nil {
			return usageError{err, c.CommandPath()}
		}
		*p.v = a
	}
	if h := o.DockerHost; h != "" && !strings.HasPrefix(h, "unix://") && !strings.HasPrefix(h, "tcp://") {
		return usagef(c, "--docker-host: %q is not unix:///PATH or tcp://HOST:PORT", h)
	}
	o.Remote = o.remote(c)
	return nil
}

// remote says whether the audit is of another machine: a daemon over the
// network is another machine's, unless this machine's files are named.
func (o *auditOptions) remote(c *cobra.Command) bool {
	if !strings.HasPrefix(o.DockerHost, "tcp://") {
		return false
	}
	for _, p := range hostPathFlags {
		if c.Flags().Changed(p.flag) || o.Getenv(p.env) != "" {
			return false
		}
	}
	return true
}

func runAudit(o *auditOptions) error {
	rep := audit.Run(context.Background(), auditConfig(o))
	if o.Output == "json" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s\n", b)
	} else {
		writeAuditTable(o, rep)
	}
	if rep.Failed() {
		return auditFailed{rep.Summary.Fail}
	}
	return nil
}

// auditConfig is the audit the flags ask for, with the names and the
// online CA this host's server.json records.
func auditConfig(o *auditOptions) audit.Config {
	cfg := audit.Config{
		DaemonJSON:    o.DaemonJSON,
		CertsDir:      o.CertsDir,
		StateDir:      o.StateDir,
		SystemdDirs:   daemonconfig.DefaultUnitDirs,
		Socket:        o.Socket,
		DockerHost:    o.DockerHost,
		CertPath:      o.CertPath,
		Group:         o.GroupFile,
		Passwd:        o.PasswdFile,
		Now:           o.Now(),
		ExpiryWarning: o.ExpiryWarning,
		Hosts:         o.Hosts,
		Remote:        o.Remote,
	}
	if o.SystemdDir != "" {
		cfg.SystemdDirs = []string{o.SystemdDir}
	}
	// A remote audit checks the certificate for the name it dials (the
	// audit's default); this machine's names say nothing about it.
	if len(cfg.Hosts) == 0 && !o.Remote {
		cfg.Hosts = authority.RecordedHosts(o.StateDir)
	}
	// A host enrolled with an online CA: the plugin's revocation list is
	// checked too.
	if !o.Remote {
		cfg.CAURL = authority.RecordedCAURL(o.StateDir)
		cfg.Gateway = authority.Mode(o.StateDir) == authority.ModeGateway
		hostAuditConfig(o, &cfg)
	}
	return cfg
}

// writeAuditTable prints one finding per line, with why and how to fix it
// indented under WARN, FAIL and SKIP.
func writeAuditTable(o *auditOptions, rep audit.Report) {
	const indent = "             "
	fmt.Fprintf(o.Out, "%-6s %-5s  %s\n", "STATUS", "CIS", "FINDING")
	for _, f := range rep.Findings {
		cis := f.CIS
		if cis == "" {
			cis = "-"
		}
		fmt.Fprintf(o.Out, "%-6s %-5s  %s\n", f.Status, cis, f.Title)
		if f.Status == audit.Pass {
			continue
		}
		if f.Detail != "" {
			fmt.Fprintf(o.Out, "%swhy: %s\n", indent, f.Detail)
		}
		if f.Fix != "" {
			fmt.Fprintf(o.Out, "%sfix: %s\n", indent, f.Fix)
		}
	}
	s := rep.Summary
	fmt.Fprintf(o.Out, "\n%d PASS, %d WARN, %d FAIL, %d SKIP\n", s.Pass, s.Warn, s.Fail, s.Skip)
}
