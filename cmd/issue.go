package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/atomicfile"
	"github.com/dtls-tool/dtls/bundle"
	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
	"github.com/dtls-tool/dtls/store"
)

type issueClientOptions struct {
	IO
	Names      []string
	StateDir   string
	Out        string
	DockerHost string
	KeyType    string
	Validity   time.Duration
	Force      bool
	Archive    string
	caKey      caKeyOptions
}

func newIssueClientCmd(io IO) *cobra.Command {
	opts := &issueClientOptions{IO: io}
	c := &cobra.Command{
		Use:   "issue-client NAME...",
		Short: "Issue client certificate bundles, one per person or CI job",
		Long: `Issue-client signs a client certificate for each NAME with the CA made by
'dtls init' and writes a bundle directory (0700) per name:

  ca.pem      the CA certificate, to verify the daemon (0444)
  cert.pem    the client certificate, CN=NAME, extended key usage clientAuth only (0444)
  key.pem     its private key (0400)
  dtls.json   the daemon URL and expiry, read by 'dtls env' (0644)

These are the file names the Docker CLI reads from DOCKER_CERT_PATH. The
bundle is written to a temporary directory and renamed into place, so it is
either complete or absent. An existing bundle is kept unless --force.

With one NAME, --out is the bundle directory (default ./dtls-NAME); with
several, --out is the directory that receives one bundle per NAME
(default: ./dtls-NAME each). Every certificate is recorded in the state
directory's database (see 'dtls list'); a run that is interrupted leaves no
record without its bundle and no half-written bundle.

NAME is the certificate's common name: letters, digits, '.', '_', '@', '-'.
Give each person their own: a shared certificate cannot be taken back from
one of them.`,
		Example: `  $ sudo dtls issue-client alice
  $ sudo dtls issue-client ci-runner --days 30 --out /root/bundles/ci-runner
  $ sudo dtls issue-client bob --docker-host tcp://docker.example.com:2376
  $ sudo dtls issue-client carol dave erin --out /root/bundles`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(c, "%s: want at least one NAME", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			seen := map[string]bool{}
			for _, n := range args {
				if err := pki.ValidateName(n); err != nil {
					return usageError{err, c.CommandPath()}
				}
				if seen[n] {
					return usagef(c, "%s: NAME %q given twice", c.CommandPath(), n)
				}
				seen[n] = true
			}
			opts.Names = args
			if _, err := pki.ParseKeyType(opts.KeyType); err != nil {
				return usagef(c, "--key-type: %v", err)
			}
			if opts.DockerHost != "" {
				if err := parseDockerHost("docker-host", opts.DockerHost); err != nil {
					return usageError{err, c.CommandPath()}
				}
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
			if opts.Archive != "" {
				if len(opts.Names) != 1 {
					return usagef(c, "--archive takes exactly one NAME")
				}
				if opts.Archive, err = absPath("archive", opts.Archive); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			return runIssueClient(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA made by 'dtls init'")
	pathFlag(c, io, &opts.Out, "out", "DTLS_OUT", "", "bundle directory to write (default ./dtls-NAME); with several NAMEs, the parent of their bundles")
	f.StringVar(&opts.DockerHost, "docker-host", "", "daemon URL recorded in the bundle (default: the one 'dtls init' chose)")
	f.StringVar(&opts.KeyType, "key-type", string(pki.ECDSAP256), "key algorithm of the client key")
	completeKeyTypes(c)
	daysFlag(c, &opts.Validity, "days", pki.DefaultClientValidity, "validity of the client certificate")
	f.StringVar(&opts.Archive, "archive", "", "also write the bundle as one tar.gz FILE (0600) for 'dtls import' on the developer's machine")
	f.BoolVar(&opts.Force, "force", false, "replace an existing bundle directory")
	opts.caKey.flags(c)
	return c
}

// bundleDir is where NAME's bundle goes.
func (o *issueClientOptions) bundleDir(name string) string {
	switch {
	case o.Out == "":
		a, _ := filepath.Abs("dtls-" + name)
		return a
	case len(o.Names) == 1:
		return o.Out
	}
	return filepath.Join(o.Out, name)
}

func runIssueClient(o *issueClientOptions) error {
	now := o.Now()
	for _, n := range o.Names {
		if err := checkBundleTarget(o.bundleDir(n), o.Force, o.StateDir); err != nil {
			return err
		}
	}
	inv, ca, err := openSigner(o.IO, o.StateDir, &o.caKey)
	if err != nil {
		return err
	}
	defer inv.Close()
	dockerHost := o.DockerHost
	if dockerHost == "" {
		srv, err := readServer(o.StateDir)
		if err != nil {
			return withHint(fmt.Errorf("no daemon URL recorded in %q: %w", o.StateDir, err), "pass --docker-host tcp://HOST:2376, or run 'dtls init' again")
		}
		dockerHost = srv.DockerHost
	}
	if o.Archive != "" {
		// Checked before anything is signed: a refused archive leaves
		// nothing behind.
		if err := checkArchiveTarget(o.Archive, o.Force); err != nil {
			return err
		}
	}
	if err := checkNameFree(inv, o.Names, "client"); err != nil {
		return err
	}
	kt, _ := pki.ParseKeyType(o.KeyType)
	items := make([]*issuance, 0, len(o.Names))
	for _, name := range o.Names {
		it, err := newClientIssuance(ca, name, o.bundleDir(name), dockerHost, kt, now, o.Validity, o.Force)
		if err != nil {
			return err
		}
		items = append(items, it)
	}
	if o.Force {
		// A replaced bundle's certificate is superseded by the new one.
		all, err := inv.All()
		if err != nil {
			return err
		}
		for _, it := range items {
			for _, r := range all {
				if r.Kind == "client" && r.Status == store.StatusGood && r.Path == it.Bundle {
					it.Supersedes = r.Serial
				}
			}
		}
	}
	failPoint(o.IO, "after-sign")
	// Record before the bundle is handed out, in the order commit
	// documents: a certificate that was handed out but not recorded could
	// never be found again to revoke.
	if err := inv.commit(o.IO, items); err != nil {
		return err
	}
	for _, it := range items {
		fmt.Fprintf(o.ErrOut, "issued client certificate %s\n", describeRecord(it.Record))
		fmt.Fprintf(o.ErrOut, "wrote bundle %s for %s\n", it.Bundle, dockerHost)
	}
	if o.Archive != "" {
		files, err := bundle.ReadDir(items[0].Bundle)
		if err == nil {
			err = bundle.WriteArchive(o.Archive, files)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(o.ErrOut, "wrote archive %s (0600)\n", o.Archive)
		fmt.Fprintf(o.ErrOut, "next: send it to %s over a private channel; on their machine: dtls import %s && eval \"$(dtls env)\"\n", o.Names[0], filepath.Base(o.Archive))
		return nil
	}
	if len(items) == 1 {
		fmt.Fprintf(o.ErrOut, "next: copy it to %s's machine as ~/.docker/dtls/default (directory 0700), then run: eval \"$(dtls env)\"\n", o.Names[0])
	} else {
		fmt.Fprintf(o.ErrOut, "next: copy each bundle to its owner's machine as ~/.docker/dtls/default (directory 0700), then run: eval \"$(dtls env)\"\n")
	}
	return nil
}

// checkNameFree refuses to give a certificate of kind a name that a
// certificate of another kind (client or server) already has: 'dtls revoke
// NAME' and 'dtls renew NAME' go by name, and must not reach a server
// certificate when a client's was meant, nor the reverse.
func checkNameFree(inv *inventory, names []string, kind string) error {
	all, err := inv.All()
	if err != nil {
		return err
	}
	for _, n := range names {
		for _, r := range all {
			if r.Name == n && r.Kind != kind {
				return withHint(fmt.Errorf("%q is already the name of a %s certificate (serial %s): a %s certificate cannot share it", n, r.Kind, r.Serial, kind),
					"choose another name")
			}
		}
	}
	return nil
}

// checkArchiveTarget refuses to overwrite an archive without force, and a
// path whose directory does not exist.
func checkArchiveTarget(path string, force bool) error {
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--archive %q: directory %q does not exist", path, filepath.Dir(path))
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--archive %q: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("--archive %q exists and is not a regular file", path)
	case !force:
		return withHint(fmt.Errorf("archive %q already exists", path), "pass --force to replace it, or choose another --archive")
	}
	return nil
}

// newClientIssuance signs a client certificate and prepares its bundle.
func newClientIssuance(ca *pki.CA, name, dir, dockerHost string, kt pki.KeyType, now time.Time, validity time.Duration, replace bool) (*issuance, error) {
	cl, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: name, KeyType: kt, Now: now, Validity: validity})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	meta, err := clientenv.MarshalMeta(clientenv.Meta{
		Name:       name,
		DockerHost: dockerHost,
		Server:     host,
		NotAfter:   cl.Cert.NotAfter.UTC(),
		Serial:     pki.Serial(cl.Cert),
	})
	if err != nil {
		return nil, err
	}
	return &issuance{
		Record: store.FromCert(cl.Cert, cl.CertPEM, "client", pki.Serial(ca.Cert), dir),
		Bundle: dir,
		files: []bundleFile{
			{"key.pem", cl.KeyPEM, keyMode},
			{"cert.pem", cl.CertPEM, certMode},
			{"ca.pem", ca.CertPEM, certMode},
			{clientenv.MetaFile, meta, metaMode},
		},
		replace: replace,
	}, nil
}

// describeRecord is pki.Describe for a record.
func describeRecord(r store.Record) string {
	if c, err := r.Cert(); err == nil {
		return pki.Describe(c)
	}
	return fmt.Sprintf("%q serial %s", r.Name, r.Serial)
}

type bundleFile struct {
	name string
	data []byte
	mode fs.FileMode
}

// bundleFiles are the only files a bundle directory holds: a client
// bundle's and an issue-server bundle's.
var bundleFiles = map[string]bool{
	"key.pem": true, "cert.pem": true, caCertFile: true, clientenv.MetaFile: true,
	serverCertFile: true, serverKeyFile: true,
}

// checkBundleTarget refuses to overwrite an existing bundle without force,
// and, even with force, a directory that overlaps the state directory or
// the daemon's certs directory, or that holds anything but bundle files: a
// replaced bundle is removed whole, and '--out /var/lib/dtls --force' must
// not delete the CA key nor '--out ~ --force' a home directory.
func checkBundleTarget(dir string, force bool, stateDir string) error {
	protected := []string{stateDir}
	if srv, err := readServer(stateDir); err == nil && srv.CertsDir != "" {
		protected = append(protected, srv.CertsDir)
	}
	for _, p := range protected {
		if within(dir, p) || within(p, dir) {
			return withHint(fmt.Errorf("bundle directory %q overlaps %q, which dtls keeps for the CA and the daemon", dir, p), "choose another --out")
		}
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("bundle directory %q: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("bundle directory %q exists and is not a directory", dir)
	case !force:
		return withHint(fmt.Errorf("bundle directory %q already exists", dir), "pass --force to replace it, or choose another --out")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("bundle directory %q: %w", dir, err)
	}
	for _, e := range entries {
		if !bundleFiles[e.Name()] {
			return withHint(fmt.Errorf("bundle directory %q holds %q, which is not part of a bundle: it is not replaced", dir, e.Name()),
				"choose another --out, or move the directory away first")
		}
	}
	return nil
}

// writeBundle writes files into a fresh temporary directory next to dir and
// renames it into place, so a bundle is complete or absent, never half
// written. With replace, an existing dir is moved aside first and removed
// after the new one is in place.
func writeBundle(dir string, files []bundleFile, replace bool) (err error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %q: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("write bundle %q: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, dirMode); err != nil {
		return fmt.Errorf("write bundle %q: %w", dir, err)
	}
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(tmp, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	if !replace {
		if _, err := os.Lstat(dir); err == nil {
			return fmt.Errorf("write bundle %q: it appeared while it was being written", dir)
		}
	}
	if err := atomicfile.ReplaceDir(tmp, dir); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return atomicfile.SyncDir(parent)
}
