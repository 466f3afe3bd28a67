package cmd

import (
	"os"
	"time"

	"github.com/spf13/cobra"
)

// NewRootCommand returns dtls's command tree wired to the process's
// standard streams, for generators that walk it (man pages, completion
// scripts: cmd/dtls-docs).
func NewRootCommand() *cobra.Command {
	return newRootCmd(IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Now: time.Now, Getenv: os.Getenv})
}
