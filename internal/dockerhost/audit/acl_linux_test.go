//go:build linux

package audit

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/dtls-tool/dtls/internal/sandbox"
)

// TestAuditSocketACL: a 0660 socket whose POSIX ACL lets another user in
// (setfacl -m u:jenkins:rw) is not a PASS: the audit names who the ACL
// admits, from the passwd and group files it reads.
func TestAuditSocketACL(t *testing.T) {
	dir, err := sandbox.NewDir()
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	require.NoError(t, os.Chmod(sock, 0o660))

	now := time.Now()
	h := newHost(t, now, sock)
	cfg := h.config(now)
	cfg.Socket = sock
	// The listener never answers: ask the Engine API elsewhere.
	cfg.DockerHost = "unix://" + filepath.Join(dir, "none.sock")
	write(t, h.passwd(), []byte("root:x:0:0:root:/root:/bin/bash\njenkins:x:1234:1234::/var/lib/jenkins:/bin/sh\n"), 0o644)
	write(t, h.group, []byte("root:x:0:\ndocker:x:"+dockerGID(t)+":\nci:x:4321:\n"), 0o644)

	// No ACL: nothing beyond the mode.
	requireOne(t, Run(context.Background(), cfg), "socket-acl", Pass, "")

	// setfacl, as an admin would run it.
	setfacl, err := exec.LookPath("setfacl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("setfacl not found (apt-get install acl; scripts/deps.sh installs it): %v", err)
		}
		t.Logf("setfacl not found: writing the ACL with setxattr only")
	} else {
		out, err := exec.Command(setfacl, "-m", "u:1234:rw", sock).CombinedOutput()
		if err != nil && strings.Contains(string(out), "Operation not supported") && os.Getenv("CI") != "true" {
			t.Skipf("no POSIX ACLs on the file system of %s: %s", dir, out)
		}
		require.NoError(t, err, "%s", out)
		rep := Run(context.Background(), cfg)
		f := requireOne(t, rep, "socket-acl", Warn, "")
		assert.Contains(t, f.Title, "lets in user jenkins, each root-equivalent")
		assert.Contains(t, f.Fix, "setfacl -x u:jenkins "+sock)
		// The mode alone still passes CIS 3.16: the ACL is the finding.
		requireOne(t, rep, "socket-mode", Pass, "3.16")
	}

	// The attribute written directly: a named group with rw under an rw
	// mask, and an unknown uid shown as a number.
	acl := aclBytes(aclEntry{aclUserObj, 6, 0xffffffff}, aclEntry{aclUser, 6, 777}, aclEntry{aclGroupObj, 6, 0xffffffff},
		aclEntry{aclGroup, 6, 4321}, aclEntry{aclMask, 6, 0xffffffff}, aclEntry{aclOther, 0, 0xffffffff})
	require.NoError(t, unix.Setxattr(sock, aclXattr, acl, 0))
	f := requireOne(t, Run(context.Background(), cfg), "socket-acl", Warn, "")
	assert.Contains(t, f.Title, "lets in user 777, group ci,")

	// Under an r-- mask the same entries cannot connect.
	acl = aclBytes(aclEntry{aclUserObj, 6, 0xffffffff}, aclEntry{aclUser, 6, 777}, aclEntry{aclGroupObj, 4, 0xffffffff},
		aclEntry{aclGroup, 6, 4321}, aclEntry{aclMask, 4, 0xffffffff}, aclEntry{aclOther, 0, 0xffffffff})
	require.NoError(t, unix.Setxattr(sock, aclXattr, acl, 0))
	requireOne(t, Run(context.Background(), cfg), "socket-acl", Pass, "")
}
