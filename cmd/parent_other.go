//go:build !darwin

package cmd

import "github.com/dtls-tool/dtls/clientenv"

// parentShellOS is clientenv.ParentShell: /proc on Linux; on Windows the
// shell is --shell's or $SHELL's (PowerShell and cmd are told apart there
// by --shell).
func parentShellOS() (clientenv.Shell, bool) { return clientenv.ParentShell() }
