package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
)

type renewOptions struct {
	IO
	Name     string
	Server   bool
	Expiring time.Duration
	StateDir string
	Out      string
	Validity time.Duration
	Restart  bool
	caKey    caKeyOptions
}

func newRenewCmd(io IO) *cobra.Command {
	opts := &renewOptions{IO: io}
	c := &cobra.Command{
		Use:   "renew NAME | --server | --expiring WINDOW",
		Short: "Renew certificates: a fresh key and certificate, same subject and names",
		Long: `Renew issues a fresh key and certificate with the same common name, host
names and key type as the certificate it replaces, from the current CA,
writes it where the old one was, and marks the old one superseded in the
inventory (it stays valid until it expires).

  dtls renew NAME            NAME's client bundle, rewritten in place (or --out)
  dtls renew --server        this host's server certificate in the certs directory
  dtls renew --expiring 30d  everything in use that expires within the window
                             (clients, this host's server, issue-server bundles)

A revoked certificate is not renewed. dockerd reads its TLS files only at
start and does not reload them on SIGHUP (moby#23936): after a server
renewal restart it, or pass --restart.`,
		Example: `  $ sudo dtls renew alice
  $ sudo dtls renew --server --restart
  $ sudo dtls renew --expiring 30d`,
		Args: func(c *cobra.Command, args []string) error {
			n := len(args)
			if opts.Server {
				n++
			}
			if opts.Expiring > 0 {
				n++
			}
			if n != 1 || len(args) > 1 {
				return usagef(c, "%s: want one of NAME, --server or --expiring", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Name = args[0]
			}
			if opts.Out != "" && opts.Name == "" {
				return usagef(c, "--out needs a NAME")
			}
			var err error
			if opts.Out != "" {
				if opts.Out, err = absPath("out", opts.Out); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runRenew(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	f.BoolVar(&opts.Server, "server", false, "renew this host's server certificate")
	windowFlag(c, &opts.Expiring, "expiring", "renew everything in use that expires within this window (e.g. 30d)")
	f.StringVar(&opts.Out, "out", "", "bundle directory to write NAME's renewed bundle to (default: where it was issued)")
	c.Flags().Var(&daysValue{&opts.Validity}, "days", "validity of the new certificates, in days (default: that of the old one)")
	f.BoolVar(&opts.Restart, "restart", false, "restart docker after a server renewal ('systemctl restart docker')")
	opts.caKey.flags(c)
	return c
}

func runRenew(o *renewOptions) error {
	now := o.Now()
	inv, ca, err := openSigner(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer inv.Close()
	all, err := inv.All()
	if err != nil {
		return err
	}
	srv, _ := readServer(o.StateDir)
	localCert := ""
	if srv != nil {
		localCert = filepath.Join(srv.CertsDir, serverCertFile)
	}

	var targets []store.Record
	switch {
	case o.Name != "":
		var named []store.Record
		for _, r := range all {
			if r.Name == o.Name && r.Kind != "ca" {
				named = append(named, r)
			}
		}
		if len(named) == 0 {
			return withHint(fmt.Errorf("no certificate named %q", o.Name), "run 'dtls list' to see names")
		}
		last := named[len(named)-1]
		if cur := newestActive(named, ""); cur != nil {
			last = *cur
		}
		if last.Status == store.StatusRevoked {
			return withHint(fmt.Errorf("certificate %q (serial %s) is revoked: a revoked certificate is not renewed", last.Name, last.Serial),
				"issue a new one if access is to be given back: dtls issue-client %s --force", last.Name)
		}
		if o.Out != "" && o.Out != last.Path {
			// Another directory than the bundle's: nothing there is
			// replaced (renew has no --force).
			if err := checkBundleTarget(o.Out, false, o.StateDir); err != nil {
				return err
			}
			last.Path = o.Out
		}
		targets = append(targets, last)
	case o.Server:
		if localCert == "" {
			return withHint(fmt.Errorf("no server recorded in %q", o.StateDir), "run 'dtls init' first")
		}
		b, err := os.ReadFile(localCert)
		if err != nil {
			return withHint(fmt.Errorf("read server certificate: %w", err), "run 'dtls init' to issue one")
		}
		c, err := pki.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("read server certificate %q: %w", localCert, err)
		}
		targets = append(targets, store.FromCert(c, b, "server", "", localCert))
	default:
		for _, r := range all {
			if r.Kind != "ca" && r.Status == store.StatusGood && r.NotAfter.Before(now.Add(o.Expiring)) {
				if r.Path == "" {
					fmt.Fprintf(o.ErrOut, "skipped %s %q serial %s: no bundle path recorded (renew it with 'dtls renew %s --out DIR')\n", r.Kind, r.Name, r.Serial, r.Name)
					continue
				}
				targets = append(targets, r)
			}
		}
		if len(targets) == 0 {
			fmt.Fprintf(o.ErrOut, "nothing expires within %s\n", o.Expiring)
			return nil
		}
	}

	var items []*issuance
	serverRenewed := false
	for _, r := range targets {
		old, err := r.Cert()
		if err != nil {
			return fmt.Errorf("renew %q serial %s: %w", r.Name, r.Serial, err)
		}
		validity := o.Validity
		if validity == 0 {
			validity = old.NotAfter.Sub(old.NotBefore) - 5*time.Minute
		}
		kt := pki.KeyTypeOf(old)
		if r.Path != "" && r.Path != localCert {
			// A bundle is replaced whole: never a directory that is not
			// one, whatever path the record holds.
			if err := checkBundleTarget(r.Path, true, o.StateDir); err != nil {
				return err
			}
		}
		var it *issuance
		switch {
		case r.Kind == "client":
			if r.Path == "" {
				return withHint(fmt.Errorf("no bundle path recorded for %q (serial %s)", r.Name, r.Serial), "pass --out DIR")
			}
			it, err = newClientIssuance(ca, r.Name, r.Path, bundleDockerHost(r.Path, srv), kt, now, validity, true)
		case r.Path == localCert:
			var cert *pki.Issued
			cert, err = ca.Issue(pki.Request{Kind: pki.KindServer, CommonName: r.Name, Hosts: pki.Hosts(old), KeyType: kt, Now: now, Validity: validity})
			if err == nil {
				it = &issuance{
					Record:     store.FromCert(cert.Cert, cert.CertPEM, "server", pki.Serial(ca.Cert), localCert),
					ServerCert: localCert,
					ServerKey:  filepath.Join(filepath.Dir(localCert), serverKeyFile),
					KeyPEM:     cert.KeyPEM,
				}
				serverRenewed = true
			}
		default:
			it, err = newServerBundleIssuance(ca, daemonCAPEM(o.StateDir, ca), r.Name, pki.Hosts(old), r.Path, kt, now, validity, true)
		}
		if err != nil {
			return err
		}
		it.Supersedes = r.Serial
		items = append(items, it)
	}
	failPoint(o.IO, "after-sign")
	if err := inv.commit(o.IO, items); err != nil {
		return err
	}
	for i, it := range items {
		where := it.Bundle
		if where == "" {
			where = it.ServerCert
		}
		fmt.Fprintf(o.ErrOut, "renewed %s %q: serial %s -> %s, expires %s, written to %s\n", it.Record.Kind, it.Record.Name,
			targets[i].Serial, it.Record.Serial, it.Record.NotAfter.UTC().Format("2006-01-02"), where)
	}
	if serverRenewed {
		fmt.Fprintln(o.ErrOut, "dockerd does not reload its TLS files on SIGHUP (moby#23936): it serves the old certificate until restarted")
		if o.Restart {
			return restartDocker(o.ErrOut)
		}
		fmt.Fprintln(o.ErrOut, "restart needed: sudo systemctl restart docker   (or pass --restart)")
	}
	return nil
}

// bundleDockerHost is the daemon URL of an existing bundle, or the one
// init recorded.
func bundleDockerHost(dir string, srv *server) string {
	if b, err := os.ReadFile(filepath.Join(dir, clientenv.MetaFile)); err == nil {
		var m struct {
			DockerHost string `json:"docker_host"`
		}
		if json.Unmarshal(b, &m) == nil && strings.HasPrefix(m.DockerHost, "tcp://") {
			return m.DockerHost
		}
	}
	if srv != nil {
		return srv.DockerHost
	}
	return ""
}
