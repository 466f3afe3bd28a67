package gateway

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// dialEnv names the socket a re-run of the test binary dials from a new
// PID namespace, as a container's process would (dialFromOtherPIDNS);
// dialAsEnv, "UID:GID", the credentials it dials with.
const (
	dialEnv   = "DTLS_TEST_DIAL_FROM_PIDNS"
	dialAsEnv = "DTLS_TEST_DIAL_AS"
	// dialDropEnv: dial as root, then drop to dialAsEnv's credentials.
	dialDropEnv = "DTLS_TEST_DIAL_DROP"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		os.Exit(dialAndPass(path))
	}
	os.Exit(m.Run())
}

// dialAndPass, in the re-run: connect to path, pass the connection to the
// parent over descriptor 3 (SCM_RIGHTS), and stay alive until the parent
// closes standard input, so that the connection's pidfd names a live
// process when the gateway places it.
func dialAndPass(path string) int {
	// path is reached through descriptor 4, opened by the parent (O_PATH):
	// a caller of another uid needs no search permission on the socket's
	// directory, as a container's process has its bind mount.
	_ = path
	drop := os.Getenv(dialDropEnv) != ""
	if as := os.Getenv(dialAsEnv); as != "" && !drop {
		// Dropped here, after exec: the test binary is not the other
		// uid's to run.
		if err := dropTo(as); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	c, err := net.Dial("unix", "/proc/self/fd/4")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := c.(*net.UnixConn).File()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := unix.Sendmsg(3, []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if drop {
		// Root when it connected, another uid now, the connection kept;
		// then a byte says so.
		if err := dropTo(os.Getenv(dialAsEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := unix.Write(3, []byte{1}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
	return 0
}

// dropTo makes this process's groups none and its gid and uid those of
// as, "UID:GID".
func dropTo(as string) error {
	var uid, gid int
	if _, err := fmt.Sscanf(as, "%d:%d", &uid, &gid); err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(gid); err != nil {
		return err
	}
	return syscall.Setuid(uid)
}

// dialFromOtherPIDNS connects to the unix socket at path from a process
// in a PID namespace of its own (a container's process, to the gateway),
// and returns the connection, handed back to this process: its peer
// credentials stay the connector's. The connector lives until the test
// ends. Root only (CLONE_NEWPID), as the gateway's tests are.
func dialFromOtherPIDNS(t *testing.T, path string) net.Conn {
	t.Helper()
	return dialFromNamespaces(t, path, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID})
}

// dialFromOwnUserNS is dialFromOtherPIDNS from a user namespace of its
// own too, as an unprivileged account makes one ('unshare -Urp').
func dialFromOwnUserNS(t *testing.T, path string) net.Conn {
	t.Helper()
	return dialFromNamespaces(t, path, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}})
}

// dialAsFromOtherPIDNS is dialFromOtherPIDNS with the connector's uid and
// gid those given.
func dialAsFromOtherPIDNS(t *testing.T, path string, uid, gid uint32) net.Conn {
	t.Helper()
	return dialFromNamespaces(t, path, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}, fmt.Sprintf("%s=%d:%d", dialAsEnv, uid, gid))
}

// dialDroppingFromOtherPIDNS is dialFromOtherPIDNS by root, which then
// drops to uid and gid and keeps living, as su-exec does.
func dialDroppingFromOtherPIDNS(t *testing.T, path string, uid, gid uint32) net.Conn {
	t.Helper()
	return dialFromNamespaces(t, path, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID},
		fmt.Sprintf("%s=%d:%d", dialAsEnv, uid, gid), dialDropEnv+"=1")
}

// dialFromNamespaces is dialFromOtherPIDNS with the connector made by attr.
func dialFromNamespaces(t *testing.T, path string, attr *syscall.SysProcAttr, env ...string) net.Conn {
	t.Helper()
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	pathFile := os.NewFile(uintptr(pfd), path)
	defer pathFile.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	mine, theirs := os.NewFile(uintptr(fds[0]), "parent"), os.NewFile(uintptr(fds[1]), "child")
	defer mine.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), dialEnv+"="+path), env...)
	cmd.ExtraFiles = []*os.File{theirs, pathFile}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = attr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	theirs.Close()
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(mine.Fd()), buf, oob, 0)
	require.NoError(t, err, "no connection from the other PID namespace")
	if slices.Contains(env, dialDropEnv+"=1") {
		// Wait for the connector's drop.
		_, err := unix.Read(int(mine.Fd()), buf)
		require.NoError(t, err, "the connector did not drop its uid")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	got, err := unix.ParseUnixRights(&msgs[0])
	require.NoError(t, err)
	require.Len(t, got, 1)
	f := os.NewFile(uintptr(got[0]), "conn")
	defer f.Close()
	c, err := net.FileConn(f)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}
