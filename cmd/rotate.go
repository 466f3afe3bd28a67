package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/atomicfile"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
)

type rotateOptions struct {
	IO
	StateDir   string
	KeyType    string
	CAValidity time.Duration
	Finish     bool
	Force      bool
	Restart    bool
	caKey      caKeyOptions
}

func newRotateCACmd(io IO) *cobra.Command {
	opts := &rotateOptions{IO: io}
	c := &cobra.Command{
		Use:   "rotate-ca",
		Short: "Replace the CA, keeping old clients working during the transition",
		Long: `Rotate-ca replaces the CA in two steps.

'dtls rotate-ca' makes a new CA (STATE_DIR/ca.pem, ca-key.pem) and keeps
the old one as STATE_DIR/ca-old.pem and ca-old-key.pem. The daemon's
ca.pem then holds both CAs, so that client certificates of either are
accepted; the server certificate is re-issued from the new CA. The old CA
was made with a path length of 0 and cannot cross-sign the new one, so a
client needs the new CA to verify the daemon: rotate-ca rewrites ca.pem
(both CAs) in every client bundle still at its recorded path; a bundle
copied elsewhere needs that ca.pem too, or a 'dtls renew NAME'. 'dtls
list' shows CA "old" for what still chains to the old CA; renew those.

'dtls rotate-ca --finish' drops the old CA: the daemon's ca.pem holds
only the new one, and certificates of the old CA are marked superseded. It
refuses while good client certificates of the old CA remain, unless
--force. dockerd reads its TLS files only at start (moby#23936): restart it
after each step, or pass --restart.`,
		Example: `  $ sudo dtls rotate-ca --restart
  $ sudo dtls list
  $ sudo dtls renew alice
  $ sudo dtls rotate-ca --finish --restart`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := pki.ParseKeyType(opts.KeyType); err != nil {
				return usagef(c, "--key-type: %v", err)
			}
			if opts.Force && !opts.Finish {
				return usagef(c, "--force applies to --finish only")
			}
			var err error
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if opts.Finish {
				return runRotateFinish(opts)
			}
			return runRotateCA(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA and the database")
	f.StringVar(&opts.KeyType, "key-type", string(pki.ECDSAP256), "key algorithm of the new CA")
	completeKeyTypes(c)
	daysFlag(c, &opts.CAValidity, "ca-days", pki.DefaultCAValidity, "validity of the new CA certificate")
	f.BoolVar(&opts.Finish, "finish", false, "drop the old CA once clients have certificates from the new one")
	f.BoolVar(&opts.Force, "force", false, "with --finish: drop the old CA although clients of it remain")
	f.BoolVar(&opts.Restart, "restart", false, "restart docker afterwards ('systemctl restart docker')")
	opts.caKey.flags(c)
	return c
}

func runRotateCA(o *rotateOptions) error {
	now := o.Now()
	inv, err := openInventory(o.IO, o.StateDir)
	if err != nil {
		return err
	}
	defer inv.Close()
	if _, err := os.Stat(filepath.Join(o.StateDir, oldCACertFile)); err == nil {
		return withHint(errors.New("a CA rotation is already in progress"), "finish it first: dtls rotate-ca --finish")
	}
	old, err := loadCA(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	srv, err := readServer(o.StateDir)
	if err != nil {
		return withHint(fmt.Errorf("no server recorded in %q: %w", o.StateDir, err), "run 'dtls init' first")
	}
	kt, _ := pki.ParseKeyType(o.KeyType)
	ca, err := pki.NewCA(pki.CARequest{CommonName: caName(), KeyType: kt, Now: now, Validity: o.CAValidity})
	if err != nil {
		return err
	}
	// The new CA key is kept encrypted when the old one was, with the
	// same passphrase.
	newKey, err := o.caKey.protect(o.IO, ca.KeyPEM, o.caKey.encrypted, false)
	if err != nil {
		return err
	}
	// Order: the old CA is copied aside before the new one replaces it,
	// so that no step loses a CA key.
	for _, f := range []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{filepath.Join(o.StateDir, oldCAKeyFile), old.KeyPEM, keyMode},
		{filepath.Join(o.StateDir, oldCACertFile), old.CertPEM, certMode},
		{filepath.Join(o.StateDir, caKeyFile), newKey, keyMode},
		{filepath.Join(o.StateDir, caCertFile), ca.CertPEM, certMode},
	} {
		if err := atomicfile.Write(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	if err := inv.Insert([]store.Record{store.FromCert(ca.Cert, ca.CertPEM, "ca", pki.Serial(ca.Cert), o.StateDir)},
		map[string]string{pki.Serial(old.Cert): store.StatusSuperseded}); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "created CA %s (%s); the old one is kept as %s until --finish\n", filepath.Join(o.StateDir, caCertFile), pki.Describe(ca.Cert), oldCACertFile)

	// The daemon trusts both CAs.
	both := daemonCAPEM(o.StateDir, ca)
	if err := atomicfile.Write(filepath.Join(srv.CertsDir, caCertFile), both, certMode); err != nil {
		return err
	}
	// The server certificate from the new CA.
	certPath := filepath.Join(srv.CertsDir, serverCertFile)
	b, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("read server certificate: %w", err)
	}
	oldSrv, err := pki.ParseCertificate(b)
	if err != nil {
		return fmt.Errorf("read server certificate %q: %w", certPath, err)
	}
	s, err := ca.Issue(pki.Request{Kind: pki.KindServer, CommonName: oldSrv.Subject.CommonName, Hosts: pki.Hosts(oldSrv), KeyType: pki.KeyTypeOf(oldSrv), Now: now})
	if err != nil {
		return err
	}
	it := &issuance{
		Record:     store.FromCert(s.Cert, s.CertPEM, "server", pki.Serial(ca.Cert), certPath),
		Supersedes: pki.Serial(oldSrv),
		ServerCert: certPath,
		ServerKey:  filepath.Join(srv.CertsDir, serverKeyFile),
		KeyPEM:     s.KeyPEM,
	}
	if err := inv.commit(o.IO, []*issuance{it}); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "issued server certificate %s from the new CA; %s holds both CAs\n", pki.Describe(s.Cert), filepath.Join(srv.CertsDir, caCertFile))

	// Client bundles still where they were written learn the new CA.
	all, err := inv.All()
	if err != nil {
		return err
	}
	updated, pending := 0, 0
	for _, r := range all {
		if r.Kind != "client" || r.Status != store.StatusGood {
			continue
		}
		pending++
		p := filepath.Join(r.Path, caCertFile)
		if cur, err := os.ReadFile(filepath.Join(r.Path, "cert.pem")); err == nil && bytes.Equal(cur, []byte(r.PEM)) {
			if err := atomicfile.Write(p, both, certMode); err != nil {
				return err
			}
			updated++
		}
	}
	if _, _, err := writeCRL(o.IO, inv, o.StateDir, &o.caKey, ca, now); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "rewrote ca.pem (both CAs) in %d of %d client bundles; bundles copied elsewhere need it too: %s\n", updated, pending, filepath.Join(srv.CertsDir, caCertFile))
	fmt.Fprintln(o.ErrOut, "next: renew the clients 'dtls list' shows with CA old ('dtls renew NAME'), then: dtls rotate-ca --finish")
	return restartOrSay(o.IO, o.Restart)
}

func runRotateFinish(o *rotateOptions) error {
	inv, err := openInventory(o.IO, o.StateDir)
	if err != nil {
		return err
	}
	defer inv.Close()
	old, err := loadOldCA(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	if old == nil {
		return withHint(errors.New("no CA rotation in progress: nothing to finish"), "start one with 'dtls rotate-ca'")
	}
	ca, err := loadCA(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	srv, err := readServer(o.StateDir)
	if err != nil {
		return fmt.Errorf("no server recorded in %q: %w", o.StateDir, err)
	}
	all, err := inv.All()
	if err != nil {
		return err
	}
	oldSerial := pki.Serial(old.Cert)
	now := o.Now()
	changes := map[string]string{}
	var left []string
	for _, r := range all {
		if r.CASerial == oldSerial && r.Kind != "ca" && r.Status == store.StatusGood && now.Before(r.NotAfter) {
			changes[r.Serial] = store.StatusSuperseded
			left = append(left, fmt.Sprintf("%s %s", r.Kind, r.Name))
		}
	}
	if len(left) > 0 && !o.Force {
		return withHint(fmt.Errorf("%d certificates still chain to the old CA: %v", len(left), left),
			"renew them ('dtls renew NAME' or 'dtls renew --expiring 10000d'), or pass --force to cut them off")
	}
	if err := atomicfile.Write(filepath.Join(srv.CertsDir, caCertFile), ca.CertPEM, certMode); err != nil {
		return err
	}
	if err := inv.Insert(nil, changes); err != nil {
		return err
	}
	for _, f := range []string{oldCAKeyFile, oldCACertFile} {
		if err := os.Remove(filepath.Join(o.StateDir, f)); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(o.StateDir); err != nil {
		return err
	}
	if _, _, err := writeCRL(o.IO, inv, o.StateDir, &o.caKey, ca, now); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "dropped the old CA (serial %s): %s holds only the new one", oldSerial, filepath.Join(srv.CertsDir, caCertFile))
	if len(left) > 0 {
		fmt.Fprintf(o.ErrOut, "; %d certificates of the old CA no longer work", len(left))
	}
	fmt.Fprintln(o.ErrOut)
	return restartOrSay(o.IO, o.Restart)
}

// restartOrSay restarts docker, or says that it must be restarted: dockerd
// does not reload its TLS files on SIGHUP (moby#23936).
func restartOrSay(io IO, restart bool) error {
	if restart {
		return restartDocker(io.ErrOut)
	}
	fmt.Fprintln(io.ErrOut, "dockerd reads its TLS files only at start (moby#23936): sudo systemctl restart docker   (or pass --restart)")
	return nil
}
