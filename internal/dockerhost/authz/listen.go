package authz

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// How dockerd finds and talks to the plugin (moby pkg/plugins):
//
//   - Its name in daemon.json, "authorization-plugins": ["dtls-authz"], is
//     the socket's base name without ".sock". dockerd looks for NAME.sock
//     and NAME/NAME.sock in /run/docker/plugins, then for NAME.spec or
//     NAME.json (a file holding the address) in /etc/docker/plugins and
//     /usr/lib/docker/plugins (discovery.go LocalRegistry.Plugin,
//     pluginPaths; discovery_unix.go specsPaths; rootless dockerd uses
//     XDG_CONFIG_HOME and ~/.local/lib instead).
//   - At start, and on a configuration reload, dockerd refuses to run
//     without the plugin (daemon/command/daemon.go validateAuthzPlugins):
//     it looks for the socket with retries (plugins.go loadWithRetry), then
//     calls /Plugin.Activate once and remembers the answer for its
//     lifetime.
//   - Each call is retried while the socket cannot be reached (connection
//     refused, reset, no such file), with a back-off of 1, 2, 4, 8 s for a
//     total of about 15 s: client.go callWithRetry stops when the next
//     back-off would end more than 30 s (defaultTimeOut) after the first
//     try. The API call then fails (HTTP 500): dockerd fails closed. An
//     answer that is not HTTP 200 fails the call at once, without retry.
//   - There is no timeout on a call that connected (the plugin client is
//     NewClient, http.Client.Timeout 0): a plugin that hangs hangs the API.
//
// So the socket should exist before dockerd starts, and outlive restarts of
// the plugin: systemd socket activation (ListenersFromSystemd) keeps the
// listening socket open, and connections wait in its backlog while the
// plugin restarts.

// unixPathMax is the size of sockaddr_un.sun_path on Linux, NUL included
// (unix(7)); macOS has 104.
const unixPathMax = 108

// Listen listens on a unix socket at path, mode 0600 (dockerd runs as root
// and is the only client), in a directory created with mode 0700 when
// missing (ListenSocket).
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	return ListenSocket(path, 0o600)
}

// ListenSocket listens on a unix socket at path with mode, in path's
// directory, which must exist. The socket is bound in a private temporary
// directory next to path, given its mode, and renamed to path, so that it
// is never reachable with another mode (bind's, the umask's).
//
// It replaces a stale socket at path (one nothing listens on), but refuses
// a socket something still answers on (another server), and anything that
// is not a socket, a symbolic link included. Closing the listener removes
// the socket, unless another one has replaced it since. The plugin and
// the gateway's own sockets are made here.
func ListenSocket(path string, mode fs.FileMode) (*SocketListener, error) {
	if len(path) >= unixPathMax {
		return nil, fmt.Errorf("socket path %q is %d bytes long: unix socket paths are limited to %d", path, len(path), unixPathMax-1)
	}
	if err := checkStale(path); err != nil {
		return nil, err
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".az")
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	if len(tmp) >= unixPathMax {
		return nil, fmt.Errorf("listen on %q: temporary socket path %q is %d bytes long: unix socket paths are limited to %d", path, tmp, len(tmp), unixPathMax-1)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	// The socket file is ours to remove by its final name (Close below):
	// the listener only knows the temporary one.
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (*SocketListener, error) {
		ul.Close()
		return nil, fmt.Errorf("listen on %q: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &SocketListener{UnixListener: ul, path: path, fi: fi}, nil
}

// RemoveStale removes a stale socket at path (a server that did not stop
// cleanly left it); anything else there is left, and the error names it.
func RemoveStale(path string) error {
	if err := checkStale(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listen on %q: remove the stale socket: %w", path, err)
	}
	return nil
}

// checkStale refuses anything at path that is not a socket nobody answers
// on; a missing path is fine.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on %q: %w", path, unwrapPath(err))
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("listen on %q: a symbolic link stands there: refused (remove it if it is not needed)", path)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("listen on %q: it exists and is not a socket (%s): remove it if it is not needed", path, describeType(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen on %q: another process is listening on that socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen on %q: probe the existing socket: %w", path, err)
	}
	return nil // stale: replaced by the rename
}

func describeType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	default:
		return "mode " + m.String()
	}
}

// SocketListener is a listener whose socket file is removed on Close, by
// the name it was renamed to.
type SocketListener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo
	once sync.Once
}

// Path is the socket's final path.
func (l *SocketListener) Path() string { return l.path }

// Addr is the socket's final path (the listener was bound to a temporary
// name).
func (l *SocketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Close closes the listener and removes its socket file, unless a new
// socket has taken its place.
func (l *SocketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}

// listenFDsStart is SD_LISTEN_FDS_START: systemd passes sockets from file
// descriptor 3 on (sd_listen_fds(3)).
const listenFDsStart = 3

// ListenersFromSystemd returns the sockets systemd passed by socket
// activation, or none when the process was not socket-activated. It follows
// sd_listen_fds(3): the file descriptors are 3 to 3+$LISTEN_FDS-1 when
// $LISTEN_PID is this process; they are marked close-on-exec, and
// LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from the
// environment so that no child takes them for its own.
//
// With socket activation systemd owns the listening socket: dockerd's
// connections wait in its backlog while the plugin (re)starts instead of
// failing. The .socket unit must have Accept=no (the default) and should
// set SocketMode=0600 (systemd's default is 0666); a socket that is not a
// listening unix socket is refused (a TCP socket would put the plugin on
// the network), and a socket file that group or others may write to is
// given mode 0600.
func ListenersFromSystemd() ([]net.Listener, error) { return systemdListeners(false) }

// TCPListenersFromSystemd is ListenersFromSystemd for the gateway: the
// sockets passed must be listening TCP sockets.
func TCPListenersFromSystemd() ([]net.Listener, error) { return systemdListeners(true) }

func systemdListeners(tcp bool) ([]net.Listener, error) {
	defer func() {
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	n, err := listenFDs(os.Getenv, os.Getpid())
	if err != nil || n == 0 {
		return nil, err
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	var ls []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range ls {
			l.Close()
		}
		return nil, err
	}
	for i := range n {
		fd := listenFDsStart + i
		name := "LISTEN_FD_" + strconv.Itoa(fd)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		l, err := systemdListener(fd, name, tcp)
		if err != nil {
			return fail(err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// listenFDs is sd_listen_fds(3) without the side effects: how many sockets
// systemd passed to the process pid, from $LISTEN_PID and $LISTEN_FDS.
func listenFDs(getenv func(string) string, pid int) (int, error) {
	pidStr := getenv("LISTEN_PID")
	if pidStr == "" {
		return 0, nil
	}
	p, err := strconv.Atoi(pidStr)
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("socket activation: invalid LISTEN_PID %q", pidStr)
	}
	if p != pid {
		// Meant for another process (we inherited the environment).
		return 0, nil
	}
	fdsStr := getenv("LISTEN_FDS")
	n, err := strconv.Atoi(fdsStr)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("socket activation: invalid LISTEN_FDS %q", fdsStr)
	}
	// An fd count that does not fit is as invalid as a negative one.
	if n > 1<<16 {
		return 0, fmt.Errorf("socket activation: invalid LISTEN_FDS %q", fdsStr)
	}
	return n, nil
}
