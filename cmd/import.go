package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/laptop/dockercontext"
	"github.com/dtls-tool/dtls/pki"
)

type importOptions struct {
	IO
	File      string
	Name      string
	Force     bool
	NoDefault bool
	NewCA     string
}

func newImportCmd(io IO) *cobra.Command {
	opts := &importOptions{IO: io}
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Install a bundle archive on this machine and make it the default",
		Long: `Import installs the bundle archive FILE (made by 'dtls issue-client NAME
--archive FILE'; "-" reads standard input) into the bundle store,
~/.docker/dtls (or $DTLS_HOME), as a directory named after the server
(0700; key.pem 0600, the other files 0644), and points the store's
'default' link at it, so that a plain 'dtls env' uses it.

Before anything is written, the archive and the bundle are checked, and
refused with an error naming the problem:
  - entries that are absolute, hold "..", are links or are not regular
    files, unexpected files, or more than 1 MiB in all;
  - a certificate that has expired (or is not yet valid);
  - a key.pem that is not the key of cert.pem;
  - a cert.pem that does not chain to ca.pem for client authentication.

An existing bundle of the same name is kept unless --force, but for a
renewal ('dtls renew NAME --archive FILE' on the CA host): a newer
certificate of the same client, for the same daemon, signed by a CA the
installed bundle trusts, replaces it in place, and every Docker context
made from it ('dtls context create') is refreshed. After the admin
began a CA rotation, the renewal is signed by the new CA: pass its
fingerprint, which the admin gives you ('dtls rotate-ca --status'), as
--new-ca; a bundle of another CA is not taken for a renewal.

FILE "-" reads the archive from standard input:
  $ ssh docker-host sudo dtls renew alice --archive - | dtls import -`,
		Example: `  $ dtls import ~/Downloads/alice-prod.tar.gz
  $ dtls import alice.tar.gz --name staging --no-default
  $ eval "$(dtls env)"`,
		Args: exactArgs(1, "one FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			opts.File = args[0]
			if opts.NewCA != "" {
				fp, err := pki.ParseFingerprint(opts.NewCA)
				if err != nil {
					return usagef(c, "--new-ca: %v", err)
				}
				opts.NewCA = fp
			}
			if opts.Name != "" {
				if err := clientenv.ValidateBundleName(opts.Name); err != nil {
					return usagef(c, "--name: %v", err)
				}
			}
			return runImport(opts)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Name, "name", "", "name of the bundle in the store (default: the server's name)")
	f.BoolVar(&opts.Force, "force", false, "replace an existing bundle of the same name")
	f.BoolVar(&opts.NoDefault, "no-default", false, "install without making it the default bundle")
	f.StringVar(&opts.NewCA, "new-ca", "", "fingerprint (sha256:HEX) of the new CA a renewal after a CA rotation is signed by")
	_ = c.RegisterFlagCompletionFunc("name", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveNoFileComp
	})
	c.ValidArgsFunction = func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return []string{"tar.gz", "tgz"}, cobra.ShellCompDirectiveFilterFileExt
	}
	return c
}

func runImport(o *importOptions) error {
	files, err := readImport(o)
	if err != nil {
		return err
	}
	checked, err := bundle.Verify(files, o.Now())
	if err != nil {
		return withHint(fmt.Errorf("refusing bundle %q: %w", o.File, err), "ask your Docker admin for a new bundle: 'dtls issue-client NAME --archive FILE'")
	}
	name := o.Name
	if name == "" {
		if name = checked.ServerName(); name == "" {
			return withHint(fmt.Errorf("bundle %q names no server to name it after", o.File), "pass --name NAME")
		}
	}
	if files, err = bundle.WithMeta(files, checked.Meta); err != nil {
		return err
	}
	root, err := clientenv.StoreRoot(o.Getenv)
	if err != nil {
		return err
	}
	dir, err := installImport(o, root, name, files, checked)
	if err != nil {
		return err
	}
	done := fmt.Sprintf("imported bundle %q into %s", name, dir)
	if err := refreshImportContexts(o, dir, name, files, checked, done); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "imported bundle %q for %s (client %q, expires %s) into %s\n",
		name, checked.Meta.DockerHost, checked.Cert.Subject.CommonName, checked.Cert.NotAfter.UTC().Format("2006-01-02"), dir)
	return importDefault(o, root, name, done)
}

// readImport reads the archive FILE ("-": standard input).
func readImport(o *importOptions) ([]bundle.File, error) {
	var files []bundle.File
	var err error
	if o.File == "-" {
		files, err = bundle.ParseArchive(o.In)
		if err != nil {
			err = fmt.Errorf("read archive from standard input: %w", err)
		}
	} else {
		files, err = bundle.ReadArchive(o.File)
	}
	var layout *bundle.LayoutError
	if errors.As(err, &layout) {
		return nil, withHint(err, "make it with 'dtls issue-client NAME --archive FILE', or tar the four files at the top level: tar -czf FILE -C DIR ca.pem cert.pem key.pem dtls.json")
	}
	return files, err
}

// installImport installs the bundle as name in the store: an existing one
// only with --force, or when the new one renews it.
func installImport(o *importOptions, root, name string, files []bundle.File, checked *bundle.Checked) (string, error) {
	replace, renewal := o.Force, false
	if existing := filepath.Join(root, name); !replace {
		if _, err := os.Lstat(existing); err == nil {
			ok, why := bundle.Renews(existing, files, checked, o.NewCA)
			if !ok {
				return "", withHint(&bundle.ExistsError{Dir: existing}, "%s: pass --force to replace it anyway, or --name to install it under another name", why)
			}
			replace, renewal = true, true
		}
	}
	dir, err := bundle.Install(root, name, files, replace)
	var exists *bundle.ExistsError
	if errors.As(err, &exists) {
		return "", withHint(err, "pass --force to replace it, or --name to install it under another name")
	}
	if err != nil {
		return "", err
	}
	if renewal {
		fmt.Fprintf(o.ErrOut, "renewed bundle %q in place (a newer certificate of the same client, from a CA it trusts)\n", name)
	}
	return dir, nil
}

// refreshImportContexts refreshes the Docker contexts made from the
// bundle: they follow it.
func refreshImportContexts(o *importOptions, dir, name string, files []bundle.File, checked *bundle.Checked, done string) error {
	cfg, err := dockercontext.ConfigDir(o.Getenv)
	if err != nil {
		return nil
	}
	written, err := dockercontext.Refresh(cfg, bundle.ContextSource(dir, files, checked.Meta))
	for _, c := range written {
		fmt.Fprintf(o.ErrOut, "refreshed docker context %q\n", c)
	}
	if err != nil {
		return partialError{done: done, step: "refreshing the docker contexts made from it", err: err,
			run: fmt.Sprintf("dtls context create NAME --bundle %s --force, for each", name)}
	}
	return nil
}

// importDefault makes the imported bundle the default (not with
// --no-default) and says how to use it.
func importDefault(o *importOptions, root, name, done string) error {
	if o.NoDefault {
		fmt.Fprintf(o.ErrOut, "use it with: eval \"$(dtls env %s)\"\n", name)
		return nil
	}
	moved, err := clientenv.SetDefault(root, name)
	reportAdopted(o.IO, root, moved)
	if err != nil {
		return partialError{done: done, step: "making it the default", err: err,
			run: fmt.Sprintf("dtls use %s (or use it now: eval \"$(dtls env %s)\")", name, name)}
	}
	fmt.Fprintf(o.ErrOut, "default bundle is now %q; run: eval \"$(dtls env)\"\n", name)
	if p := o.Getenv(clientenv.EnvCertPath); p != "" {
		fmt.Fprintf(o.ErrOut, "dtls: warning: $%s is set (%s) and overrides the default bundle\n", clientenv.EnvCertPath, p)
	}
	return nil
}
