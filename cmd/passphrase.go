package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dtls-tool/dtls/pki"
)

// caKeyOptions says where the CA key's passphrase comes from, for every
// command that signs. The passphrase is asked once per run.
type caKeyOptions struct {
	PassFile string
	PassEnv  string

	pass      []byte
	encrypted bool
}

func (k *caKeyOptions) flags(c *cobra.Command) {
	c.Flags().StringVar(&k.PassFile, "passphrase-file", "", "read the CA key's passphrase from this file (first line)")
	c.Flags().StringVar(&k.PassEnv, "passphrase-env", "", "read the CA key's passphrase from this environment variable")
	c.MarkFlagsMutuallyExclusive("passphrase-file", "passphrase-env")
}

// passphrase reads the passphrase from --passphrase-file, --passphrase-env,
// or the terminal (twice when confirm); it never prompts when stdin is not
// a terminal.
func (k *caKeyOptions) passphrase(io IO, confirm bool) ([]byte, error) {
	if k.pass != nil {
		return k.pass, nil
	}
	var p []byte
	switch {
	case k.PassFile != "":
		b, err := os.ReadFile(k.PassFile)
		if err != nil {
			return nil, fmt.Errorf("--passphrase-file: %w", err)
		}
		p, _, _ = bytes.Cut(b, []byte("\n"))
		p = bytes.TrimSuffix(p, []byte("\r"))
		if len(p) == 0 {
			return nil, fmt.Errorf("--passphrase-file %q: empty first line", k.PassFile)
		}
	case k.PassEnv != "":
		p = []byte(io.Getenv(k.PassEnv))
		if len(p) == 0 {
			return nil, fmt.Errorf("--passphrase-env: $%s is empty or unset", k.PassEnv)
		}
	default:
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
		var err error
		if p, err = read("CA key passphrase: "); err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		if confirm {
			again, err := read("again: ")
			if err != nil {
				return nil, fmt.Errorf("read passphrase: %w", err)
			}
			if !bytes.Equal(p, again) {
				return nil, errors.New("the passphrases differ")
			}
		}
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	k.pass = p
	return p, nil
}

// loadCA reads the CA from the state directory, decrypting its key with
// the passphrase when it is encrypted. The CA's KeyPEM stays the on-disk
// form, so that a copy (rotate-ca) is never written in the clear.
// openSigner opens the inventory (taking the state directory's lock) and
// then loads the CA, which every command that signs needs together. The
// caller closes the inventory.
func openSigner(io IO, stateDir string, k *caKeyOptions) (*inventory, *pki.CA, error) {
	inv, err := openInventory(io, stateDir)
	if err != nil {
		return nil, nil, err
	}
	ca, err := loadCA(io, stateDir, k)
	if err != nil {
		inv.Close()
		return nil, nil, err
	}
	return inv, ca, nil
}

func loadCA(io IO, stateDir string, k *caKeyOptions) (*pki.CA, error) {
	if err := checkStateDir(stateDir); err != nil {
		if os.IsNotExist(errors.Unwrap(err)) || errors.Is(err, os.ErrNotExist) {
			return nil, withHint(err, "run 'sudo dtls init' first, or point --state-dir at the directory it used")
		}
		return nil, err
	}
	certPath := filepath.Join(stateDir, caCertFile)
	if _, err := os.Stat(certPath); errors.Is(err, os.ErrNotExist) {
		return nil, withHint(fmt.Errorf("no CA in %q: %w", stateDir, err), "run 'sudo dtls init' first, on the CA's host ('dtls init --ca-from' keeps no CA key)")
	}
	return loadCAFiles(io, stateDir, caCertFile, caKeyFile, k)
}

func loadCAFiles(io IO, stateDir, certFile, keyFile string, k *caKeyOptions) (*pki.CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(stateDir, certFile))
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPath := filepath.Join(stateDir, keyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, withHint(fmt.Errorf("read CA key: %w", err), "sign on the CA's host: this one has no CA key")
	}
	plain := keyPEM
	if pki.IsEncryptedKey(keyPEM) {
		k.encrypted = true
		pass, err := k.passphrase(io, false)
		if err != nil {
			return nil, err
		}
		if plain, err = pki.DecryptKey(keyPEM, pass); err != nil {
			if errors.Is(err, pki.ErrWrongPassphrase) {
				return nil, fmt.Errorf("CA key %q: wrong passphrase", keyPath)
			}
			return nil, fmt.Errorf("CA key %q: %w", keyPath, err)
		}
	}
	ca, err := pki.LoadCA(certPEM, plain)
	if err != nil {
		return nil, fmt.Errorf("load CA from %q: %w", stateDir, err)
	}
	ca.KeyPEM = keyPEM
	return ca, nil
}

// loadOldCA reads the CA being replaced, or returns nil when no rotation is
// in progress.
func loadOldCA(io IO, stateDir string, k *caKeyOptions) (*pki.CA, error) {
	if _, err := os.Stat(filepath.Join(stateDir, oldCACertFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return loadCAFiles(io, stateDir, oldCACertFile, oldCAKeyFile, k)
}

// protect encrypts a new CA key when the CA is to be kept encrypted.
func (k *caKeyOptions) protect(io IO, keyPEM []byte, encrypt, confirm bool) ([]byte, error) {
	if !encrypt {
		return keyPEM, nil
	}
	pass, err := k.passphrase(io, confirm)
	if err != nil {
		return nil, err
	}
	return pki.EncryptKey(keyPEM, pass)
}
