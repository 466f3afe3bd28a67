package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dtls-tool/dtls/internal/cahost/authority"
)

// caKeyOptions says where the CA key's passphrase comes from, for every
// command that signs. The authority asks once per run.
type caKeyOptions struct {
	PassFile string
	PassEnv  string
}

func (k *caKeyOptions) flags(c *cobra.Command) {
	c.Flags().StringVar(&k.PassFile, "passphrase-file", "", "read the CA key's passphrase from this file (first line)")
	c.Flags().StringVar(&k.PassEnv, "passphrase-env", "", "read the CA key's passphrase from this environment variable")
	c.MarkFlagsMutuallyExclusive("passphrase-file", "passphrase-env")
}

// source is the passphrase source for package authority.
func (k *caKeyOptions) source(io IO) authority.Passphraser {
	return passphraseFunc(func(confirm bool) ([]byte, error) { return k.passphrase(io, confirm) })
}

type passphraseFunc func(confirm bool) ([]byte, error)

func (f passphraseFunc) Passphrase(confirm bool) ([]byte, error) { return f(confirm) }

// passphrase reads the passphrase from --passphrase-file, --passphrase-env,
// or the terminal (twice when confirm); it never prompts when stdin is not
// a terminal.
func (k *caKeyOptions) passphrase(io IO, confirm bool) ([]byte, error) {
	var p []byte
	var err error
	switch {
	case k.PassFile != "":
		p, err = k.passphraseFile()
	case k.PassEnv != "":
		p = []byte(io.Getenv(k.PassEnv))
		if len(p) == 0 {
			return nil, fmt.Errorf("--passphrase-env: $%s is empty or unset", k.PassEnv)
		}
	default:
		p, err = promptPassphrase(io, confirm)
	}
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return p, nil
}

// passphraseFile is the first line of --passphrase-file.
func (k *caKeyOptions) passphraseFile() ([]byte, error) {
	b, err := os.ReadFile(k.PassFile)
	if err != nil {
		return nil, fmt.Errorf("--passphrase-file: %w", err)
	}
	p, _, _ := bytes.Cut(b, []byte("\n"))
	p = bytes.TrimSuffix(p, []byte("\r"))
	if len(p) == 0 {
		return nil, fmt.Errorf("--passphrase-file %q: empty first line", k.PassFile)
	}
	return p, nil
}

// promptPassphrase asks the terminal for the passphrase (twice when
// confirm); it never prompts when stdin is not a terminal.
func promptPassphrase(io IO, confirm bool) ([]byte, error) {
	f, ok := io.In.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, withHint(errors.New("the CA key is encrypted and stdin is not a terminal to ask for its passphrase"),
			"pass --passphrase-file FILE or --passphrase-env VAR")
	}
	read := func(prompt string) ([]byte, error) {
		fmt.Fprint(io.ErrOut, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(io.ErrOut)
		return b, err
	}
	p, err := read("CA key passphrase: ")
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if !confirm {
		return p, nil
	}
	again, err := read("again: ")
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if !bytes.Equal(p, again) {
		return nil, errors.New("the passphrases differ")
	}
	return p, nil
}
