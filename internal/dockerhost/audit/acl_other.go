//go:build !linux

package audit

// readACL: POSIX ACLs in the system.posix_acl_access attribute are Linux's;
// elsewhere the audit says the ACL was not checked.
func readACL(string) ([]aclEntry, error) { return nil, errACLNotChecked }
