package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
)

type useOptions struct {
	IO
	Name string
}

func newUseCmd(io IO) *cobra.Command {
	opts := &useOptions{IO: io}
	c := &cobra.Command{
		Use:     "use NAME",
		Aliases: []string{"default"},
		Short:   "Make a bundle the default one for 'dtls env'",
		Long: `Use points the bundle store's 'default' link (~/.docker/dtls/default, or
$DTLS_HOME/default) at the bundle NAME, so that a plain 'dtls env' uses it.
The link is relative and is switched atomically (a new link under a
temporary name renamed over the old one): a shell starting at the same
moment sees the old bundle or the new one, never none.

$DTLS_CERT_PATH, when set, still overrides the default.`,
		Example: `  $ dtls ls
  $ dtls use staging
  $ eval "$(dtls env)"`,
		Args:              exactArgs(1, "one NAME"),
		ValidArgsFunction: completeBundleNames(io),
		RunE: func(c *cobra.Command, args []string) error {
			opts.Name = args[0]
			if err := clientenv.ValidateBundleName(opts.Name); err != nil {
				return usageError{err, c.CommandPath()}
			}
			return runUse(opts)
		},
	}
	return c
}

func runUse(o *useOptions) error {
	root, err := clientenv.StoreRoot(o.Getenv)
	if err != nil {
		return err
	}
	moved, err := clientenv.SetDefault(root, o.Name)
	reportAdopted(o.IO, root, moved)
	if errors.Is(err, fs.ErrNotExist) {
		return withHint(err, "run 'dtls ls' to see the bundles, or 'dtls import FILE' to add one")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "default bundle is now %q; run: eval \"$(dtls env)\"\n", o.Name)
	warnBundleExpiry(o.IO, filepath.Join(root, o.Name))
	if p := o.Getenv(clientenv.EnvCertPath); p != "" {
		fmt.Fprintf(o.ErrOut, "dtls: warning: $%s is set (%s) and overrides the default bundle\n", clientenv.EnvCertPath, p)
	}
	return nil
}
