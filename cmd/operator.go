package cmd

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/cafront"
	"github.com/dtls-tool/dtls/internal/cahost/authority"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
)

// operatorOptions are the flags of a command that can call an online CA's
// operator API instead of a local state directory: --ca-url and the
// operator's bundle.
type operatorOptions struct {
	CAURL string
	Dir   string
}

// flags adds --ca-url and --operator (default $DTLS_CA_OPERATOR) to c.
func (o *operatorOptions) flags(c *cobra.Command, io IO) {
	c.Flags().StringVar(&o.CAURL, "ca-url", "", "call the online CA at this URL (https://HOST:PORT) instead of the local state directory")
	pathFlag(c, io, &o.Dir, "operator", "DTLS_CA_OPERATOR", "", "the operator's bundle directory (ca.pem, cert.pem, key.pem; 'dtls ca init' makes one); alone, the CA is the one its dtls.json records")
}

// check validates the flags: --ca-url is a CA URL, and needs --operator.
func (o *operatorOptions) check(c *cobra.Command) error {
	if o.CAURL == "" {
		if !c.Flags().Changed("operator") {
			return nil
		}
		// The operator's bundle records the CA it was made by or
		// enrolled with (dtls.json ca_url).
		dir, err := absPath("operator", o.Dir)
		if err != nil {
			return usageError{err, c.CommandPath()}
		}
		u, err := cafront.OperatorCAURL(dir)
		if err != nil {
			return usagef(c, "--operator %q records no CA URL (dtls.json ca_url): give --ca-url", o.Dir)
		}
		o.CAURL = u
	}
	u, err := fleet.ParseURL(o.CAURL)
	if err != nil {
		return usagef(c, "--ca-url: %v", err)
	}
	o.CAURL = u
	if o.Dir == "" {
		return usagef(c, "--ca-url needs --operator DIR (or $DTLS_CA_OPERATOR): the bundle of a certificate with the role %s", fleet.OperatorRole)
	}
	if o.Dir, err = absPath("operator", o.Dir); err != nil {
		return usageError{err, c.CommandPath()}
	}
	return nil
}

// open is the CA the flags name (cafront.Open): the online CA at --ca-url
// with the operator's bundle, else the state directory stateDir, opened
// with the passphrase source k (nil: none).
func (o *operatorOptions) open(io IO, stateDir string, k *caKeyOptions) (cafront.CA, error) {
	ca, err := cafront.Open(cafront.Config{StateDir: stateDir, CAURL: o.CAURL, Operator: o.Dir,
		OpenLocal: func(dir string) (*authority.Authority, error) { return openAuthority(io, dir, k) }})
	return ca, operatorHint(err)
}

// operatorHint says how to get an operator's bundle when it is missing.
func operatorHint(err error) error {
	var oe *cafront.OperatorError
	if errors.As(err, &oe) {
		return withHint(err, "'dtls ca init' makes the first operator's bundle (STATE_DIR/operator on the CA's host)")
	}
	return err
}
