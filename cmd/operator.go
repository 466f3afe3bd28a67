package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/clientenv"
	"github.com/dtls-tool/dtls/internal/cahost/store"
	"github.com/dtls-tool/dtls/internal/laptop/agent"
	"github.com/dtls-tool/dtls/internal/laptop/bundle"
	"github.com/dtls-tool/dtls/internal/onlineca/fleet"
	"github.com/dtls-tool/dtls/pki"
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
		m, err := readBundleMeta(dir)
		if err != nil || m.CAURL == "" {
			return usagef(c, "--operator %q records no CA URL (dtls.json ca_url): give --ca-url", o.Dir)
		}
		o.CAURL = m.CAURL
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

// readBundleMeta reads a bundle directory's dtls.json.
func readBundleMeta(dir string) (*clientenv.Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, clientenv.MetaFile))
	if err != nil {
		return nil, err
	}
	var m clientenv.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// client is a fleet client that authenticates with the operator's bundle
// and trusts only its ca.pem.
func (o *operatorOptions) client() (*fleet.Client, error) {
	id, err := bundle.LoadIdentity(o.Dir)
	if err != nil {
		return nil, withHint(fmt.Errorf("operator %w", err),
			"'dtls ca init' makes the first operator's bundle (STATE_DIR/operator on the CA's host)")
	}
	c, err := agent.ClientFor(id, o.CAURL)
	if err != nil {
		return nil, fmt.Errorf("operator %w", err)
	}
	return c, nil
}

// runListRemote is 'dtls certs --ca-url': the online CA's inventory,
// shown as the local one is.
func runListRemote(o *listOptions) error {
	c, err := o.op.client()
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	recs, err := c.Certs(context.Background())
	if err != nil {
		return err
	}
	roles, current := fleet.InventoryRoles(recs)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].NotBefore.Before(recs[j].NotBefore) })
	fmt.Fprintf(o.ErrOut, "inventory of the CA at %s\n", o.op.CAURL)
	// 'dtls agent' renews at two thirds of the lifetime: a certificate
	// past that was not renewed when it should have been.
	window := func(r store.Record) time.Duration {
		if o.Expiring > 0 {
			return o.Expiring
		}
		return r.NotAfter.Sub(r.NotBefore) / 3
	}
	return printListEntries(o, listEntries(recs, roles, current, o.Now(), window, o.Expiring > 0))
}

// runRevokeRemote is 'dtls revoke --ca-url'.
func runRevokeRemote(o *revokeOptions) error {
	c, err := o.op.client()
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	res, err := c.Revoke(context.Background(), fleet.RevokeRequest{Key: o.Key, Reason: pki.Reasons[o.Reason]})
	if err != nil {
		return err
	}
	var last time.Time
	for _, r := range res.Revoked {
		fmt.Fprintf(o.ErrOut, "revoked %s %q serial %s (%s) at the CA %s\n", r.Kind, r.Name, r.Serial, o.Reason, o.op.CAURL)
		if r.NotAfter.After(last) {
			last = r.NotAfter
		}
	}
	fmt.Fprintf(o.ErrOut, "the CA signs a new revocation list: the authorization plugin of every host enrolled with it ('dtls init --ca-url ... --authz') refuses the certificate within about %s\n",
		fleet.Duration(2*fleet.DefaultCRLRefresh))
	if !last.IsZero() {
		fmt.Fprintf(o.ErrOut, "dtls: warning: a daemon without the plugin checks no CRL (moby#27778): it accepts the certificate until it expires on %s\n", last.UTC().Format("2006-01-02 15:04 MST"))
	}
	return nil
}
