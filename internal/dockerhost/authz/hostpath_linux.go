package authz

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ancestorProblem says why a directory above a bind root lets someone but
// root swap what is below it: not root's, or writable by others (a
// sticky directory, /tmp, only when child, the entry below it, is root's:
// the sticky bit keeps others from renaming it). "" when none.
func ancestorProblem(dir, child string) string {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Sprintf("cannot be read (%v)", unwrapPath(err))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "has no owner this system reports"
	}
	if st.Uid != 0 {
		return fmt.Sprintf("belongs to uid %d, not root", st.Uid)
	}
	if fi.Mode().Perm()&0o022 == 0 {
		return ""
	}
	if fi.Mode()&os.ModeSticky != 0 {
		if c, err := os.Lstat(child); err == nil {
			if cs, ok := c.Sys().(*syscall.Stat_t); ok && cs.Uid == 0 {
				return ""
			}
		}
		return fmt.Sprintf("is writable by others (mode %s) and %s in it is not root's", fi.Mode().Perm(), child)
	}
	return fmt.Sprintf("is writable by others (mode %s)", fi.Mode().Perm())
}

// mountFlagsProblem says why the file system of path may not hold a
// workspace: without nosuid, a setuid file a container's root makes there
// is root for the holder's host account; without nodev, a device node is
// the host's disk. "" when it is mounted nosuid,nodev.
func mountFlagsProblem(path string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Sprintf("statfs: %v", err)
	}
	var missing []string
	if st.Flags&unix.ST_NOSUID == 0 {
		missing = append(missing, "nosuid")
	}
	if st.Flags&unix.ST_NODEV == 0 {
		missing = append(missing, "nodev")
	}
	if len(missing) == 0 {
		return ""
	}
	return fmt.Sprintf("its file system is not mounted %s (a container's root makes setuid files and device nodes there that the holder's host account could use): mount it with nosuid,nodev, e.g. mount --bind -o nosuid,nodev DIR DIR", strings.Join(missing, ","))
}

// HostCgroupnsDefault reports whether this host runs cgroup v1, where
// dockerd gives a container the host's cgroup namespace unless asked
// otherwise ("host" is its default-cgroupns-mode there, "private" on
// cgroup v2). Read once: a host does not change cgroup versions without
// a reboot.
var HostCgroupnsDefault = sync.OnceValue(func() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false
	}
	return st.Type != unix.CGROUP2_SUPER_MAGIC
})
