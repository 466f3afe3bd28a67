package cmd

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/atomicfile"
	"github.com/dtls-tool/dtls/daemonconfig"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
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
	caKey          caKeyOptions
}

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
--force; a server certificate that does not cover every --host, does not
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
certificate works against every daemon.`,
		Example: `  $ sudo dtls init
  $ sudo dtls init --host docker.example.com --host 203.0.113.10
  $ sudo dtls init --dry-run
  $ sudo dtls init --ca-from /root/dtls-server-docker2
  $ dtls init --state-dir ./ca --certs-dir ./certs --daemon-json ./daemon.json --systemd-dir ./systemd`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if _, _, err := parseListen(opts.Listen); err != nil {
				return usageError{err, c.CommandPath()}
			}
			for _, h := range opts.Hosts {
				if err := pki.ValidateHost(h); err != nil {
					return usagef(c, "--host: %v", err)
				}
			}
			if _, err := pki.ParseKeyType(opts.KeyType); err != nil {
				return usagef(c, "--key-type: %v", err)
			}
			if opts.CAValidity <= 0 || opts.ServerValidity <= 0 {
				return usagef(c, "--ca-days and --server-days must be positive")
			}
			for _, p := range []struct {
				flag string
				v    *string
			}{{"daemon-json", &opts.DaemonJSON}, {"certs-dir", &opts.CertsDir}, {"state-dir", &opts.StateDir}} {
				a, err := absPath(p.flag, *p.v)
				if err != nil {
					return usageError{err, c.CommandPath()}
				}
				*p.v = a
			}
			if within(opts.StateDir, opts.CertsDir) || within(opts.CertsDir, opts.StateDir) {
				return usagef(c, "--state-dir %q and --certs-dir %q overlap: the CA key must never sit with the daemon's certificates", opts.StateDir, opts.CertsDir)
			}
			if opts.CAFrom != "" {
				a, err := absPath("ca-from", opts.CAFrom)
				if err != nil {
					return usageError{err, c.CommandPath()}
				}
				opts.CAFrom = a
			}
			if opts.Restart && opts.DryRun {
				return usagef(c, "--restart and --dry-run cannot be used together")
			}
			return runInit(opts)
		},
	}
	f := c.Flags()
	f.StringArrayVar(&opts.Hosts, "host", nil, "DNS name or IP the server certificate covers (repeatable; default: hostname, FQDN, interface addresses, localhost, 127.0.0.1)")
	f.StringVar(&opts.Listen, "listen", defaultListen, "TCP address dockerd listens on, added to \"hosts\"")
	pathFlag(c, io, &opts.DaemonJSON, "daemon-json", "DTLS_DAEMON_JSON", defaultDaemonJSON, "daemon.json to merge into")
	pathFlag(c, io, &opts.CertsDir, "certs-dir", "DTLS_CERTS_DIR", defaultCertsDir, "directory for the daemon's ca.pem, server-cert.pem, server-key.pem")
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "root-only directory for the CA key and records")
	pathFlag(c, io, &opts.SystemdDir, "systemd-dir", "DTLS_SYSTEMD_DIR", "", "look for docker.service only here and write the drop-in here (default: the systemd unit directories)")
	f.StringVar(&opts.KeyType, "key-type", string(pki.ECDSAP256), "key algorithm: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519")
	daysFlag(c, &opts.CAValidity, "ca-days", pki.DefaultCAValidity, "validity of a new CA certificate")
	daysFlag(c, &opts.ServerValidity, "server-days", pki.DefaultServerValidity, "validity of a new server certificate")
	f.BoolVar(&opts.DryRun, "dry-run", false, "print what would be written, with a diff of daemon.json; change nothing")
	f.BoolVar(&opts.Force, "force", false, "replace an existing CA and server certificate (every client certificate must then be re-issued)")
	f.BoolVar(&opts.Restart, "restart", false, "run 'systemctl daemon-reload' and 'systemctl restart docker' afterwards")
	f.StringVar(&opts.CAFrom, "ca-from", "", "set this host up with a server bundle made by 'dtls issue-server' on the CA's host (no CA key here)")
	f.BoolVar(&opts.EncryptCAKey, "encrypt-ca-key", false, "keep a new CA key encrypted (PKCS #8, scrypt, AES-256): every command that signs asks for the passphrase")
	opts.caKey.flags(c)
	c.MarkFlagsMutuallyExclusive("ca-from", "force")
	c.MarkFlagsMutuallyExclusive("ca-from", "key-type")
	completeKeyTypes(c)
	return c
}

// daysFlag is a duration flag counted in days, the unit admins think in.
func daysFlag(c *cobra.Command, p *time.Duration, name string, def time.Duration, usage string) {
	c.Flags().Var(&daysValue{p}, name, fmt.Sprintf("%s, in days (default %d)", usage, int(def.Hours()/24)))
	*p = def
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

// renewBefore is how close to expiry init re-issues a server certificate.
const renewBefore = 30 * 24 * time.Hour

func runInit(o *initOptions) error {
	now := o.Now()
	say := func(format string, a ...any) { fmt.Fprintf(o.ErrOut, format+"\n", a...) }
	if o.DryRun {
		say("dry run: nothing will be written")
	}

	listenHost, port, _ := parseListen(o.Listen)
	hosts := o.Hosts
	if len(hosts) == 0 {
		hosts = defaultHosts()
	}
	kt, _ := pki.ParseKeyType(o.KeyType)

	// Everything that can fail on bad input is checked before anything is
	// written: the state directory, the systemd unit and daemon.json.
	if err := checkStateDir(o.StateDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	unitDirs := daemonconfig.DefaultUnitDirs
	dropInDir := "/etc/systemd/system"
	if o.SystemdDir != "" {
		unitDirs, dropInDir = []string{o.SystemdDir}, o.SystemdDir
	}
	unit, err := daemonconfig.FindUnit(unitDirs)
	if err != nil {
		return err
	}
	if unit != nil && unit.HiddenTLSFlags() {
		return withHint(fmt.Errorf("%s passes TLS flags through a variable of ExecStart (%s): dockerd would refuse them with the TLS settings in %s",
			unit.Path, unit.ExecStart, o.DaemonJSON),
			"delete the --tls* flags where the variable is set, then run dtls init again: it puts them into daemon.json")
	}
	if unit != nil && len(unit.VarHosts) > 0 {
		// A drop-in cannot take a flag out of a variable, and dockerd
		// refuses "hosts" given both ways.
		return withHint(fmt.Errorf("%s passes -H %s through %s: dockerd would refuse to start with \"hosts\" in %s",
			unit.Path, strings.Join(unit.VarHosts, " -H "), unit.VarSource, o.DaemonJSON),
			"delete those -H flags where they are set, then run dtls init again: it puts the hosts into daemon.json")
	}
	settings := daemonconfig.Settings{
		Listen: o.Listen,
		CACert: filepath.Join(o.CertsDir, caCertFile),
		Cert:   filepath.Join(o.CertsDir, serverCertFile),
		Key:    filepath.Join(o.CertsDir, serverKeyFile),
	}
	if unit != nil && len(unit.Hosts) > 0 {
		settings.Sockets = unit.Hosts
	}
	preview, err := daemonconfig.Apply(o.DaemonJSON, settings, now, true)
	if err != nil {
		return err
	}
	if preview.Changed && !o.DryRun {
		// Asked before anything is written, so that a file dockerd would
		// refuse changes nothing at all.
		if err := validateMerged(o, preview.New); err != nil {
			return err
		}
	}
	reason := ""
	if o.CAFrom != "" {
		if err := installServerBundle(o, &hosts, say, &reason); err != nil {
			return err
		}
	} else if err := initCA(o, hosts, kt, now, say, &reason); err != nil {
		return err
	}

	// systemd: dockerd refuses to start when "hosts" is set both by a -H
	// flag and in daemon.json ("the following directives are specified
	// both as a flag and in the configuration file: hosts"; Docker docs,
	// "Configure the daemon with systemd").
	needReload := false
	if unit != nil && unit.NeedsDropIn() {
		moved := "its TLS flags"
		if len(unit.Hosts) > 0 {
			moved = fmt.Sprintf("%v", unit.Hosts)
		}
		if o.DryRun {
			say("would write a drop-in in %s/docker.service.d removing %s from %s (moved into daemon.json)", dropInDir, moved, unit.Path)
			fmt.Fprintf(o.Out, "%s", unit.DropIn())
		} else {
			p, changed, err := daemonconfig.WriteDropIn(dropInDir, unit)
			if err != nil {
				return err
			}
			if changed {
				needReload = true
				say("wrote %s: docker.service passed %s, now in daemon.json", p, moved)
			}
		}
	}

	// daemon.json.
	if o.DryRun {
		for _, ch := range preview.Changes {
			say("would change %s: %s", o.DaemonJSON, ch)
		}
		if preview.Changed {
			if err := daemonconfig.Diff(o.Out, o.DaemonJSON, preview.Old, preview.New); err != nil {
				return err
			}
		} else {
			say("%s already has the TLS settings", o.DaemonJSON)
		}
		return nil
	}
	res, err := daemonconfig.Apply(o.DaemonJSON, settings, now, false)
	if err != nil {
		return err
	}
	if res.Changed {
		needReload = true
		for _, ch := range res.Changes {
			say("%s: %s", o.DaemonJSON, ch)
		}
		if res.Backup != "" {
			say("backup of the previous %s: %s", o.DaemonJSON, res.Backup)
		}
	} else {
		say("%s already has the TLS settings", o.DaemonJSON)
	}

	rec := server{
		DockerHost: clientDockerHost(hosts, listenHost, port),
		Listen:     o.Listen,
		Hosts:      hosts,
		CertsDir:   o.CertsDir,
		DaemonJSON: o.DaemonJSON,
		Updated:    now.UTC(),
	}
	if err := writeJSON(filepath.Join(o.StateDir, serverRecord), rec, 0o600); err != nil {
		return err
	}

	if reason != "" || needReload {
		if o.Restart {
			if err := restartDocker(o.ErrOut); err != nil {
				return err
			}
		} else {
			say("dockerd reads its TLS settings only when it starts: run")
			say("  sudo systemctl daemon-reload && sudo systemctl restart docker")
		}
	}
	say("next: sudo dtls issue-client NAME   (clients will connect to %s)", rec.DockerHost)
	return nil
}

// serverReissueReason says why the server certificate must be issued again,
// or returns "" when it can be kept.
func serverReissueReason(ca *pki.CA, certPath, keyPath string, hosts []string, now time.Time) string {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return "none yet"
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return "existing one is unreadable"
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return "its key is missing"
	}
	key, err := pki.ParsePrivateKey(keyPEM)
	if err != nil || !pki.KeyMatches(cert, key) {
		return "its key does not match"
	}
	if err := pki.Verify(cert, []*x509.Certificate{ca.Cert}, pki.KindServer, now); err != nil {
		return "existing one does not verify with this CA"
	}
	if m := pki.Missing(cert, hosts); len(m) > 0 {
		return fmt.Sprintf("existing one does not cover %v", m)
	}
	if cert.NotAfter.Before(now.Add(renewBefore)) {
		return "existing one expires " + cert.NotAfter.UTC().Format("2006-01-02")
	}
	return ""
}

// currentSerial is the hex serial of the certificate at path, or "".
func currentSerial(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	c, err := pki.ParseCertificate(b)
	if err != nil {
		return ""
	}
	return pki.Serial(c)
}

func caName() string {
	h, _ := os.Hostname()
	if h == "" {
		return "dtls CA"
	}
	return "dtls CA for " + h
}

// validateMerged runs dockerd --validate (Docker 23 and later) on the
// merged daemon.json, written to a temporary file. dockerd checks keys,
// types and values there without reading the TLS files, which do not exist
// yet on a first run.
func validateMerged(o *initOptions, merged []byte) error {
	dockerd := o.Getenv("DTLS_DOCKERD")
	if dockerd == "" {
		var err error
		if dockerd, err = exec.LookPath("dockerd"); err != nil {
			return nil
		}
	}
	f, err := os.CreateTemp("", "dtls-daemon-*.json")
	if err != nil {
		return fmt.Errorf("validate merged %s: %w", o.DaemonJSON, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(merged)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("validate merged %s: %w", o.DaemonJSON, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = daemonconfig.Validate(ctx, dockerd, f.Name())
	switch {
	case err == nil:
		fmt.Fprintf(o.ErrOut, "dockerd --validate accepts the merged %s\n", o.DaemonJSON)
		return nil
	case errors.Is(err, daemonconfig.ErrValidateUnsupported):
		return nil
	}
	return withHint(fmt.Errorf("dockerd would refuse the merged %s, nothing was changed: %w", o.DaemonJSON, err),
		"fix what dockerd names in %s, then run dtls init again (dtls init --dry-run shows the merge)", o.DaemonJSON)
}

func restartDocker(errOut io.Writer) error {
	for _, args := range [][]string{{"daemon-reload"}, {"restart", "docker"}} {
		cmd := exec.Command("systemctl", args...)
		cmd.Stdout, cmd.Stderr = errOut, errOut
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("systemctl %v: %w", args, err)
		}
	}
	fmt.Fprintln(errOut, "restarted docker")
	return nil
}

// initCA makes or keeps the CA and this host's server certificate, and the
// daemon's copy of the CA certificate; reason says why the server
// certificate was issued ("" when kept).
func initCA(o *initOptions, hosts []string, kt pki.KeyType, now time.Time, say func(string, ...any), reason *string) error {
	var err error
	// The inventory, under the state directory's lock for the rest of
	// the run.
	var inv *inventory
	if !o.DryRun {
		if err := atomicfile.MkdirAll(o.StateDir, dirMode); err != nil {
			return err
		}
		if inv, err = openInventory(o.IO, o.StateDir); err != nil {
			return err
		}
		defer inv.Close()
	}

	// The CA.
	var ca *pki.CA
	caCertPath := filepath.Join(o.StateDir, caCertFile)
	caKeyPath := filepath.Join(o.StateDir, caKeyFile)
	_, certErr := os.Stat(caCertPath)
	_, keyErr := os.Stat(caKeyPath)
	switch {
	case certErr == nil && keyErr == nil && !o.Force:
		ca, err = loadCA(o.IO, o.StateDir, &o.caKey)
		if err != nil {
			return err
		}
		if o.EncryptCAKey && !o.caKey.encrypted {
			if o.DryRun {
				say("would encrypt the CA key %s", caKeyPath)
			} else {
				keyPEM, err := o.caKey.protect(o.IO, ca.KeyPEM, true, true)
				if err != nil {
					return err
				}
				if err := atomicfile.Write(caKeyPath, keyPEM, keyMode); err != nil {
					return err
				}
				say("encrypted the CA key %s", caKeyPath)
			}
		}
		if !o.DryRun {
			if err := inv.ensureRecorded(store.FromCert(ca.Cert, ca.CertPEM, "ca", pki.Serial(ca.Cert), o.StateDir)); err != nil {
				return err
			}
		}
		say("kept CA %s (%s)", caCertPath, pki.Describe(ca.Cert))
	case (certErr == nil) != (keyErr == nil) && !o.Force:
		return withHint(fmt.Errorf("state directory %q holds only one of %s and %s", o.StateDir, caCertFile, caKeyFile),
			"restore the missing file from a backup, or run 'dtls init --force' to make a new CA (every client certificate must then be re-issued)")
	default:
		ca, err = pki.NewCA(pki.CARequest{CommonName: caName(), KeyType: kt, Now: now, Validity: o.CAValidity})
		if err != nil {
			return err
		}
		verb := "created"
		if certErr == nil {
			verb = "replaced (--force)"
		}
		if o.DryRun {
			say("would create CA in %s (%s key)", o.StateDir, kt)
		} else {
			if err := atomicfile.MkdirAll(o.StateDir, dirMode); err != nil {
				return err
			}
			// Key first: a crash between the two leaves a key without a
			// certificate, which the next run reports, never a certificate
			// whose key is lost.
			keyPEM, err := o.caKey.protect(o.IO, ca.KeyPEM, o.EncryptCAKey, true)
			if err != nil {
				return err
			}
			if err := atomicfile.Write(caKeyPath, keyPEM, keyMode); err != nil {
				return err
			}
			if err := atomicfile.Write(caCertPath, ca.CertPEM, certMode); err != nil {
				return err
			}
			rec := store.FromCert(ca.Cert, ca.CertPEM, "ca", pki.Serial(ca.Cert), o.StateDir)
			changes := map[string]string{}
			if all, err := inv.All(); err == nil {
				for _, r := range all {
					if r.Kind == "ca" && r.Status == store.StatusGood {
						changes[r.Serial] = store.StatusSuperseded
					}
				}
			}
			if err := inv.Insert([]store.Record{rec}, changes); err != nil {
				return err
			}
			say("%s CA %s (%s)", verb, caCertPath, pki.Describe(ca.Cert))
		}
	}

	// The server certificate.
	certPath := filepath.Join(o.CertsDir, serverCertFile)
	keyPath := filepath.Join(o.CertsDir, serverKeyFile)
	if o.Force {
		*reason = "--force"
	} else {
		*reason = serverReissueReason(ca, certPath, keyPath, hosts, now)
	}
	if *reason == "" {
		say("kept server certificate %s (covers %d hosts)", certPath, len(hosts))
	} else if o.DryRun {
		say("would issue server certificate %s for %v (%s)", certPath, hosts, *reason)
	} else {
		srv, err := ca.Issue(pki.Request{Kind: pki.KindServer, Hosts: hosts, KeyType: kt, Now: now, Validity: o.ServerValidity})
		if err != nil {
			return err
		}
		it := &issuance{
			Record:     store.FromCert(srv.Cert, srv.CertPEM, "server", pki.Serial(ca.Cert), certPath),
			Supersedes: currentSerial(certPath),
			ServerCert: certPath,
			ServerKey:  keyPath,
			KeyPEM:     srv.KeyPEM,
		}
		if err := inv.commit(o.IO, []*issuance{it}); err != nil {
			return err
		}
		say("issued server certificate %s (%s) for %v: %s", certPath, pki.Describe(srv.Cert), hosts, *reason)
	}

	// The daemon's copy of the CA certificate.
	caInCerts := filepath.Join(o.CertsDir, caCertFile)
	// During a rotation the daemon's ca.pem holds both CAs (dtls rotate-ca).
	daemonCA := daemonCAPEM(o.StateDir, ca)
	if old, err := os.ReadFile(caInCerts); err == nil && bytes.Equal(old, daemonCA) {
		if !o.DryRun {
			if err := ensureMode(caInCerts, certMode, say); err != nil {
				return err
			}
		}
	} else if o.DryRun {
		say("would write %s", caInCerts)
	} else if err := atomicfile.Write(caInCerts, daemonCA, certMode); err != nil {
		return err
	} else {
		say("wrote %s", caInCerts)
	}
	if o.DryRun {
		return nil
	}
	// Kept files whose mode was loosened are tightened whatever else this
	// run wrote (README: "a loosened key mode found by init is tightened").
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{keyPath, keyMode}, {certPath, certMode}, {caKeyPath, keyMode}, {caCertPath, certMode}} {
		if err := ensureMode(f.path, f.mode, say); err != nil {
			return err
		}
	}
	return nil
}

// installServerBundle installs a server bundle from 'dtls issue-server'
// (init --ca-from) into the certs directory.
func installServerBundle(o *initOptions, hosts *[]string, say func(string, ...any), reason *string) error {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(o.CAFrom, name))
		if err != nil {
			return nil, withHint(fmt.Errorf("--ca-from %q: %w", o.CAFrom, err), "make the bundle on the CA's host with 'dtls issue-server HOST --out DIR'")
		}
		return b, nil
	}
	caPEM, err := read(caCertFile)
	if err != nil {
		return err
	}
	certPEM, err := read(serverCertFile)
	if err != nil {
		return err
	}
	keyPEM, err := read(serverKeyFile)
	if err != nil {
		return err
	}
	roots, err := pki.ParseCertificates(caPEM)
	if err != nil {
		return fmt.Errorf("--ca-from: %s: %w", caCertFile, err)
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return fmt.Errorf("--ca-from: %s: %w", serverCertFile, err)
	}
	key, err := pki.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("--ca-from: %s: %w", serverKeyFile, err)
	}
	if !pki.KeyMatches(cert, key) {
		return fmt.Errorf("--ca-from: %s does not match %s", serverKeyFile, serverCertFile)
	}
	if err := pki.Verify(cert, roots, pki.KindServer, o.Now()); err != nil {
		return fmt.Errorf("--ca-from: %w", err)
	}
	if len(o.Hosts) == 0 {
		*hosts = pki.Hosts(cert)
	} else {
		if m := pki.Missing(cert, *hosts); len(m) > 0 {
			return withHint(fmt.Errorf("--ca-from: the server certificate does not cover %v", m), "issue it again with 'dtls issue-server ... --host' on the CA's host")
		}
	}
	certPath := filepath.Join(o.CertsDir, serverCertFile)
	if o.DryRun {
		say("would install the server bundle %s (%s) into %s", o.CAFrom, pki.Describe(cert), o.CertsDir)
		*reason = "--ca-from"
		return nil
	}
	if err := atomicfile.MkdirAll(o.StateDir, dirMode); err != nil {
		return err
	}
	if currentSerial(certPath) == pki.Serial(cert) {
		say("kept server certificate %s (%s)", certPath, pki.Describe(cert))
	} else {
		*reason = "--ca-from"
		if err := atomicfile.MkdirAll(o.CertsDir, 0o755); err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(o.CertsDir, serverKeyFile), keyPEM, keyMode); err != nil {
			return err
		}
		if err := atomicfile.Write(certPath, certPEM, certMode); err != nil {
			return err
		}
		say("installed server certificate %s (%s) from %s", certPath, pki.Describe(cert), o.CAFrom)
	}
	if err := atomicfile.Write(filepath.Join(o.CertsDir, caCertFile), caPEM, certMode); err != nil {
		return err
	}
	return nil
}
