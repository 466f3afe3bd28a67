package cmd

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"

	"github.com/dtls-tool/dtls/clientenv"
)

// parentShellOS asks the kernel for the parent process's name
// (sysctl kern.proc.pid, the kinfo_proc ps(1) reads): macOS has no /proc,
// and $SHELL names the login shell, not the one running dtls.
func parentShellOS() (clientenv.Shell, bool) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", os.Getppid())
	if err != nil {
		return "", false
	}
	comm := kp.Proc.P_comm[:]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	return clientenv.ShellOfProcess(string(comm))
}
