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
	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/pki"
)

type issueClientOptions struct {
	IO
	Name       string
	StateDir   string
	Out        string
	DockerHost string
	KeyType    string
	Validity   time.Duration
	Force      bool
}

func newIssueClientCmd(io IO) *cobra.Command {
	opts := &issueClientOptions{IO: io}
	c := &cobra.Command{
		Use:   "issue-client NAME",
		Short: "Issue a client certificate bundle for one person or CI job",
		Long: `Issue-client signs a client certificate for NAME with the CA made by
'dtls init' and writes a bundle directory (0700):

  ca.pem      the CA certificate, to verify the daemon (0444)
  cert.pem    the client certificate, CN=NAME, extended key usage clientAuth only (0444)
  key.pem     its private key (0400)
  dtls.json   the daemon URL and expiry, read by 'dtls env' (0644)

These are the file names the Docker CLI reads from DOCKER_CERT_PATH. The
bundle is written to a temporary directory and renamed into place, so it is
either complete or absent. An existing bundle is kept unless --force.

NAME is the certificate's common name: letters, digits, '.', '_', '@', '-'.
Give each person their own: a shared certificate cannot be taken back from
one of them.`,
		Example: `  $ sudo dtls issue-client alice
  $ sudo dtls issue-client ci-runner --days 30 --out /root/bundles/ci-runner
  $ sudo dtls issue-client bob --docker-host tcp://docker.example.com:2376`,
		Args: exactArgs(1, "one NAME"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			if err := pki.ValidateName(opts.Name); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if _, err := pki.ParseKeyType(opts.KeyType); err != nil {
				return usagef(c, "--key-type: %v", err)
			}
			if opts.DockerHost != "" {
				if err := parseDockerHost("docker-host", opts.DockerHost); err != nil {
					return usageError{err, c.CommandPath()}
				}
			}
			if opts.Out == "" {
				opts.Out = "dtls-" + opts.Name
			}
			var err error
			if opts.Out, err = absPath("out", opts.Out); err != nil {
				return usageError{err, c.CommandPath()}
			}
			if opts.StateDir, err = absPath("state-dir", opts.StateDir); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runIssueClient(opts)
		},
	}
	f := c.Flags()
	pathFlag(c, io, &opts.StateDir, "state-dir", "DTLS_STATE_DIR", defaultStateDir, "directory holding the CA made by 'dtls init'")
	pathFlag(c, io, &opts.Out, "out", "DTLS_OUT", "", "bundle directory to write (default ./dtls-NAME)")
	f.StringVar(&opts.DockerHost, "docker-host", "", "daemon URL recorded in the bundle (default: the one 'dtls init' chose)")
	f.StringVar(&opts.KeyType, "key-type", string(pki.ECDSAP256), "key algorithm of the client key")
	daysFlag(c, &opts.Validity, "days", pki.DefaultClientValidity, "validity of the client certificate")
	f.BoolVar(&opts.Force, "force", false, "replace an existing bundle directory")
	return c
}

func runIssueClient(o *issueClientOptions) error {
	now := o.Now()
	if err := checkBundleTarget(o.Out, o.Force); err != nil {
		return err
	}
	ca, err := loadCA(o.StateDir)
	if err != nil {
		return err
	}
	dockerHost := o.DockerHost
	if dockerHost == "" {
		srv, err := readServer(o.StateDir)
		if err != nil {
			return withHint(fmt.Errorf("no daemon URL recorded in %q: %w", o.StateDir, err), "pass --docker-host tcp://HOST:2376, or run 'dtls init' again")
		}
		dockerHost = srv.DockerHost
	}
	kt, _ := pki.ParseKeyType(o.KeyType)
	cl, err := ca.Issue(pki.Request{Kind: pki.KindClient, CommonName: o.Name, KeyType: kt, Now: now, Validity: o.Validity})
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	meta, err := clientenv.MarshalMeta(clientenv.Meta{
		Name:       o.Name,
		DockerHost: dockerHost,
		Server:     host,
		NotAfter:   cl.Cert.NotAfter.UTC(),
		Serial:     pki.Serial(cl.Cert),
	})
	if err != nil {
		return err
	}
	// Record before the bundle exists: a certificate that was handed out
	// but not recorded could never be found again to revoke.
	if err := recordIssued(o.StateDir, cl); err != nil {
		return err
	}
	files := []bundleFile{
		{"key.pem", cl.KeyPEM, keyMode},
		{"cert.pem", cl.CertPEM, certMode},
		{"ca.pem", ca.CertPEM, certMode},
		{clientenv.MetaFile, meta, metaMode},
	}
	if err := writeBundle(o.Out, files, o.Force); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "issued client certificate %s\n", pki.Describe(cl.Cert))
	fmt.Fprintf(o.ErrOut, "wrote bundle %s for %s\n", o.Out, dockerHost)
	fmt.Fprintf(o.ErrOut, "next: copy it to %s's machine as ~/.docker/dtls/default (directory 0700), then run: eval \"$(dtls env)\"\n", o.Name)
	return nil
}

type bundleFile struct {
	name string
	data []byte
	mode fs.FileMode
}

// checkBundleTarget refuses to overwrite an existing bundle without force.
func checkBundleTarget(dir string, force bool) error {
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
	var old string
	if replace {
		if _, err := os.Lstat(dir); err == nil {
			old = tmp + ".old"
			if err := os.Rename(dir, old); err != nil {
				return fmt.Errorf("move old bundle %q aside: %w", dir, err)
			}
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		return fmt.Errorf("write bundle %q: %w", dir, err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("remove old bundle %q: %w", old, err)
		}
	}
	return atomicfile.SyncDir(parent)
}
