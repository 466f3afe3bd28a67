package cmd

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/dtls-tool/dtls/internal/dockerhost/audit"
)

// hostAuditFlags are audit's flags for auditd and the audit trail.
func hostAuditFlags(c *cobra.Command, io IO, o *auditOptions) {
	pathFlag(c, io, &o.AuditLog, "audit-log", "DTLS_AUDIT_LOG", defaultAuditLog, "the authorization plugin's audit trail")
	pathFlag(c, io, &o.AuditdRulesDir, "auditd-rules-dir", "DTLS_AUDITD_RULES_DIR", audit.DefaultAuditdRulesDir,
		"auditd's rules directory; given, its *.rules are checked instead of the rules loaded in the kernel")
	c.Flags().StringVar(&o.WriteRules, "write-auditd-rules", "", "write DIR/"+audit.AuditdRulesFile+" (0640), the auditd rules this host needs, and audit nothing")
	_ = c.MarkFlagDirname("write-auditd-rules")
}

// hostAuditConfig adds auditd's and the trail's paths to cfg.
func hostAuditConfig(o *auditOptions, cfg *audit.Config) {
	cfg.AuditLog = o.AuditLog
	cfg.AuditdRulesDir = o.AuditdRulesDir
	// The kernel's rules are asked for only when the rules directory is
	// the host's: another directory names the rules to check.
	if o.AuditdRulesDir == audit.DefaultAuditdRulesDir {
		if p, err := exec.LookPath("auditctl"); err == nil {
			cfg.Auditctl = p
		}
	}
	cfg.OwnFiles = []audit.OwnFile{{What: "dtls's state directory", Path: o.StateDir},
		{What: "dtls's configuration (the plugin's policy)", Path: filepath.Dir(defaultAuthzPolicy)}}
}

// runWriteAuditdRules writes the rules file and says how to load it.
func runWriteAuditdRules(o *auditOptions) error {
	dir, err := absPath("write-auditd-rules", o.WriteRules)
	if err != nil {
		return err
	}
	cfg := auditConfig(o)
	path, err := audit.WriteAuditdRules(dir, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%s\n", path)
	fmt.Fprintf(o.ErrOut, "dtls audit: wrote %s (0640); load it with: sudo augenrules --load\n", path)
	return nil
}
