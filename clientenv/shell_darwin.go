package clientenv

// ShellOfProcess names the shell of a process name (a process's comm, e.g.
// "-zsh" for a login shell), and false when it is not a shell dtls knows.
func ShellOfProcess(comm string) (Shell, bool) { return shellOfComm(comm) }
