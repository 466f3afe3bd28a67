package cmd

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
)

// bundleDir returns the directory of the bundle called name in the store,
// or, for an empty name, the default bundle ($DTLS_CERT_PATH, else the
// store's default link).
func bundleDir(io IO, name string) (string, error) {
	if name == "" {
		return clientenv.CertPath(io.Getenv)
	}
	if err := clientenv.ValidateBundleName(name); err != nil {
		return "", err
	}
	root, err := clientenv.StoreRoot(io.Getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, name), nil
}

// completeBundleNames completes the first argument with the names of the
// bundles in the store. It reads directory names only: completion runs at
// every TAB.
func completeBundleNames(io IO) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return bundleNames(io, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

func bundleNames(io IO, prefix string) []string {
	root, err := clientenv.StoreRoot(io.Getenv)
	if err != nil {
		return nil
	}
	entries, err := clientenv.List(root)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if e.Err == nil && strings.HasPrefix(e.Name, prefix) {
			names = append(names, e.Name)
		}
	}
	return names
}
