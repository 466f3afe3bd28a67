package cmd

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/dockerhost/authz"
)

// trailServeFlags are authz serve's flags for the audit trail.
func trailServeFlags(c *cobra.Command, o *authzServeOptions) {
	c.Flags().StringVar(&o.AuditFailure, "audit-failure", string(authz.AuditDenyWrites),
		"while the audit trail cannot be written: deny-writes (reads go on) or deny-all")
	_ = c.RegisterFlagCompletionFunc("audit-failure", cobra.FixedCompletions(
		[]string{string(authz.AuditDenyWrites), string(authz.AuditDenyAll)}, cobra.ShellCompDirectiveNoFileComp))
	c.Flags().BoolVar(&o.AuditFsync, "audit-fsync", false, "fsync the audit trail at each record (default: written to the kernel at each record, fsync at rotation and exit)")
}

// trailLogFlags are authz log's flags for the chain.
func trailLogFlags(c *cobra.Command, o *authzLogOptions) {
	c.Flags().BoolVar(&o.Verify, "verify", false, "check the trail's hash chain: where it starts, and the first record removed, changed or reordered")
	c.Flags().BoolVar(&o.Head, "head", false, "print the chain's head, SEQ sha256:HEX, to send elsewhere")
	c.Flags().StringVar(&o.Anchor, "anchor", "", `with --verify, a head printed earlier ("SEQ sha256:HEX") that must still be in the trail`)
	c.MarkFlagsMutuallyExclusive("verify", "head")
	for _, f := range []string{"user", "since", "decision"} {
		c.MarkFlagsMutuallyExclusive("verify", f)
		c.MarkFlagsMutuallyExclusive("head", f)
	}
}

// trailBroken is a chain that does not hold; exit code 1.
type trailBroken struct{ b *authz.Break }

func (e trailBroken) Error() string {
	return fmt.Sprintf("audit trail broken at %s: record %s: %s", e.b.Where(), e.b.Kind, e.b.Detail)
}

// runAuthzTrail runs --head or --verify.
func runAuthzTrail(c *cobra.Command, o *authzLogOptions) error {
	if o.Head {
		h, err := authz.AuditHead(o.AuditLog)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%d %s\n", h.Seq, h.Hash)
		return err
	}
	var anchor *authz.Anchor
	if o.Anchor != "" {
		a, err := authz.ParseAnchor(o.Anchor)
		if err != nil {
			return usagef(c, "--anchor: %v", err)
		}
		anchor = &a
	}
	v, err := authz.VerifyAudit(o.AuditLog, anchor)
	if err != nil {
		return err
	}
	if o.Output == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s\n", b)
	} else {
		writeVerification(o, v)
	}
	if v.Break != nil {
		return trailBroken{v.Break}
	}
	return nil
}

// chainStart says where the chain verified starts.
func chainStart(v *authz.Verification) string {
	switch {
	case v.Start.Seq == 0:
		return "no chained record"
	case v.Genesis():
		return fmt.Sprintf("%s seq %d, the genesis: the trail is whole since its first record", v.Start, v.Start.Seq)
	case v.Rotated != nil:
		return fmt.Sprintf("%s seq %d, after %s: the last record rotation dropped (the record at %s says so)", v.Start, v.Start.Seq, v.Start.Prev, v.Rotated)
	}
	return fmt.Sprintf("%s seq %d, after %s: a record rotated out of the trail (no rotation record says so: a trail written before they were)", v.Start, v.Start.Seq, v.Start.Prev)
}

// writeVerification prints what --verify found, one fact a line.
func writeVerification(o *authzLogOptions, v *authz.Verification) {
	if v.Break != nil {
		fmt.Fprintf(o.Out, "files:   %d, %d records read up to the break\n", len(v.Files), v.Records)
	} else {
		fmt.Fprintf(o.Out, "files:   %d, %d records\n", len(v.Files), v.Records)
	}
	if v.Unchained > 0 {
		fmt.Fprintf(o.Out, "before:  %d records without a chain (an older plugin), not checked\n", v.Unchained)
	}
	fmt.Fprintf(o.Out, "start:   %s\n", chainStart(v))
	for _, t := range v.Torn {
		fmt.Fprintf(o.Out, "torn:    %s cut short by a crash, marked by the record after it\n", t)
	}
	if v.Head.Seq > 0 && v.Break == nil {
		fmt.Fprintf(o.Out, "head:    %d %s\n", v.Head.Seq, v.Head.Hash)
	}
	if v.Anchor != "" {
		fmt.Fprintf(o.Out, "anchor:  %s\n", v.Anchor)
	}
	if v.Break == nil {
		fmt.Fprintf(o.Out, "ok:      no record removed, changed or reordered\n")
	}
}
