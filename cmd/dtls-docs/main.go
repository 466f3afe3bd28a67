// Command dtls-docs writes dtls's man pages and shell completion scripts,
// generated from the command tree, for packaging ('make man', 'make
// install'). It is a separate binary so that dtls itself does not link the
// Markdown-to-roff converter.
//
//	dtls-docs man DIR           DIR/dtls.1, DIR/dtls-env.1, ...
//	dtls-docs completion DIR    DIR/dtls.bash, dtls.zsh, dtls.fish, dtls.ps1
//	dtls-docs units DIR         DIR/system/*.service ... and DIR/user/*.service:
//	                            the packages' systemd units (package sysunit)
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/dtls-tool/dtls/cmd"
	"github.com/dtls-tool/dtls/internal/sysunit"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "dtls-docs: error: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: dtls-docs man|completion|units DIR")
	}
	dir := args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if args[0] == "units" {
		return writeUnits(dir)
	}
	root := cmd.NewRootCommand()
	root.DisableAutoGenTag = true
	switch args[0] {
	case "man":
		if err := doc.GenManTree(root, &doc.GenManHeader{Title: "DTLS", Section: "1", Source: "dtls", Manual: "dtls manual"}, dir); err != nil {
			return err
		}
		return aliasPages(root, dir)
	case "completion":
		for name, gen := range map[string]func(string) error{
			"dtls.bash": func(p string) error { return root.GenBashCompletionFileV2(p, true) },
			"dtls.zsh":  root.GenZshCompletionFile,
			"dtls.fish": func(p string) error { return root.GenFishCompletionFile(p, true) },
			"dtls.ps1":  root.GenPowerShellCompletionFileWithDesc,
		} {
			if err := gen(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q (want man, completion or units)", args[0])
}

// writeUnits writes the packages' systemd units: DIR/system for
// /usr/lib/systemd/system, DIR/user for /usr/lib/systemd/user.
func writeUnits(dir string) error {
	for sub, units := range map[string]map[string][]byte{"system": sysunit.System(), "user": sysunit.UserUnits()} {
		d := filepath.Join(dir, sub)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for _, n := range sysunit.Names(units) {
			if err := os.WriteFile(filepath.Join(d, n), units[n], 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// aliasPages writes a page for each alias of a command (dtls-list.1 for
// dtls-certs.1, dtls-ls.1 for dtls-bundles.1) that includes the command's
// page with man's .so request, so that 'man dtls-ls' keeps working.
func aliasPages(c *cobra.Command, dir string) error {
	for _, sub := range c.Commands() {
		base := strings.ReplaceAll(sub.CommandPath(), " ", "-")
		for _, a := range sub.Aliases {
			alias := strings.ReplaceAll(c.CommandPath(), " ", "-") + "-" + a + ".1"
			if err := os.WriteFile(filepath.Join(dir, alias), []byte(".so man1/"+base+".1\n"), 0o644); err != nil {
				return err
			}
		}
		if err := aliasPages(sub, dir); err != nil {
			return err
		}
	}
	return nil
}
