package authority

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/dtls-tool/dtls/daemonconfig"
)

// init --local retires the docker group: dockerd's own socket becomes
// root's alone ("group": "root" in daemon.json, and SocketGroup=root for
// a socket-activated dockerd), and the host's accounts use the dtls
// gateway's local socket, where the policy gives each its role. Every
// member of the group docker was root on the host
// (https://docs.docker.com/engine/security/#docker-daemon-attack-surface);
// root keeps dockerd's socket.

// Paths and names of init --local.
const (
	// DefaultProfileDir holds the login shells' snippets.
	DefaultProfileDir = "/etc/profile.d"
	// LocalProfile is the snippet that points the accounts' DOCKER_HOST
	// at the gateway's local socket.
	LocalProfile = "dtls-docker-host.sh"
	// LocalDockerHost is the gateway's local socket, as a DOCKER_HOST.
	LocalDockerHost = "unix:///run/dtls/docker.sock"
	// LocalSocketDropIn makes docker.socket's socket root's (systemd
	// creates it for a dockerd started with -H fd://, whatever
	// daemon.json's "group" says).
	LocalSocketDropIn = "docker.socket.d/dtls-local.conf"
	// localHeader starts the files init --local writes: only those are
	// removed by its undo.
	localHeader = "# Written by dtls init --local."
	// defaultSocketGroup is dockerd's default "group".
	defaultSocketGroup = "docker"
)

// LocalProfileContent is the profile snippet: a login shell of an account
// other than root, without a DOCKER_HOST of its own, gets the gateway's.
var LocalProfileContent = []byte(localHeader + `
# dockerd's own socket is root's alone: the host's accounts reach Docker
# through the dtls gateway's local socket, with the role its policy gives
# them ('dtls role --unix-user NAME ROLE'). Undo: dtls init --gateway
# without --local.
if [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" != 0 ]; then
	export DOCKER_HOST=` + LocalDockerHost + `
fi
`)

// LocalSocketDropInContent is docker.socket's drop-in.
var LocalSocketDropInContent = []byte(localHeader + `
[Socket]
SocketGroup=root
`)

// LocalChange is what init --local, or its undo, changes for whom.
type LocalChange struct {
	// Group had dockerd's socket before init --local ("docker" when
	// daemon.json named none), and has it again after the undo; Members
	// are its members, primary group included.
	Group   string
	Members []string
	// Undone: init ran without --local on a host that had it.
	Undone bool
	// Profile and SocketDropIn are the files written (or removed by the
	// undo); "" when unchanged.
	Profile, SocketDropIn string
}

// planLocal decides daemon.json's "group": --local makes it root (the
// group it had is recorded, to be given back); a run without it on a host
// that had it gives the recorded group back. It returns the change, the
// group to record, and what changes for whom (nil: nothing).
func planLocal(r InitRequest) (daemonconfig.GroupChange, string, *LocalChange, error) {
	var was *Server
	if srv, err := ReadServer(r.StateDir); err == nil && srv.Local {
		was = srv
	}
	switch {
	case r.Local && !r.Gateway:
		return daemonconfig.GroupChange{}, "", nil, errors.New("--local needs --gateway: the local socket accounts use instead of dockerd's is the gateway's")
	case r.Local:
		prev := ""
		if was != nil {
			prev = was.LocalGroup
		} else {
			var err error
			if prev, err = daemonJSONGroup(r.DaemonJSON); err != nil {
				return daemonconfig.GroupChange{}, "", nil, err
			}
		}
		return daemonconfig.GroupChange{Set: true, Name: "root"}, prev, &LocalChange{Group: socketGroup(prev)}, nil
	case was != nil:
		return daemonconfig.GroupChange{Set: true, Name: was.LocalGroup}, "", &LocalChange{Group: socketGroup(was.LocalGroup), Undone: true}, nil
	}
	return daemonconfig.GroupChange{}, "", nil, nil
}

func socketGroup(g string) string {
	if g == "" {
		return defaultSocketGroup
	}
	return g
}

// daemonJSONGroup is daemon.json's "group" ("" when absent, or no file).
func daemonJSONGroup(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var v struct {
		Group string `json:"group"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		// daemonconfig's merge, which ran first, says where.
		return "", fmt.Errorf("read %q: %w", path, err)
	}
	return v.Group, nil
}

// planLocalFiles writes the profile snippet and, for a socket-activated
// dockerd (fd:// in hosts), docker.socket's drop-in; the undo removes
// them (only files init --local wrote). It reports whether a unit
// changed (systemd must reload).
func planLocalFiles(t *txn, r InitRequest, dropInDir string, hosts []string, lc *LocalChange, res *InitResult) bool {
	if lc == nil {
		return false
	}
	if members, err := groupMembers(r.GroupFile, r.PasswdFile, lc.Group); err == nil {
		lc.Members = members
	}
	profile := ""
	if r.ProfileDir != "" {
		profile = filepath.Join(r.ProfileDir, LocalProfile)
	}
	dropIn := ""
	if slices.ContainsFunc(hosts, func(h string) bool { return strings.HasPrefix(h, "fd://") }) || lc.Undone {
		dropIn = filepath.Join(dropInDir, LocalSocketDropIn)
	}
	if lc.Undone {
		lc.Profile = planLocalRemove(t, r, profile, res)
		lc.SocketDropIn = planLocalRemove(t, r, dropIn, res)
		return lc.SocketDropIn != ""
	}
	lc.Profile = planLocalWrite(t, r, profile, LocalProfileContent, res)
	lc.SocketDropIn = planLocalWrite(t, r, dropIn, LocalSocketDropInContent, res)
	return lc.SocketDropIn != ""
}

func planLocalWrite(t *txn, r InitRequest, p string, content []byte, res *InitResult) string {
	if p == "" || fileHas(p, content) {
		return ""
	}
	if r.DryRun {
		res.say("would write %s", p)
		return p
	}
	t.Mkdir(filepath.Dir(p), 0o755)
	t.Write(p, content, 0o644)
	res.say("wrote %s", p)
	return p
}

func planLocalRemove(t *txn, r InitRequest, p string, res *InitResult) string {
	if p == "" {
		return ""
	}
	b, err := os.ReadFile(p)
	if err != nil || !strings.HasPrefix(string(b), localHeader) {
		// Only ours: a file of that name written by hand stays.
		return ""
	}
	if r.DryRun {
		res.say("would remove %s", p)
		return p
	}
	t.Remove(p)
	res.say("removed %s", p)
	return p
}

// groupMembers lists the members of group name in the group file, and the
// accounts of the passwd file whose primary group it is ("NAME (primary
// group)"); none when there is no such group.
func groupMembers(groupFile, passwdFile, name string) ([]string, error) {
	if groupFile == "" {
		groupFile = "/etc/group"
	}
	if passwdFile == "" {
		passwdFile = "/etc/passwd"
	}
	var members []string
	gid := ""
	err := eachLine(groupFile, func(f []string) {
		if len(f) >= 4 && f[0] == name {
			gid = f[2]
			for _, m := range strings.Split(f[3], ",") {
				if m != "" && !slices.Contains(members, m) {
					members = append(members, m)
				}
			}
		}
	})
	if err != nil || gid == "" {
		return nil, err
	}
	if _, err := strconv.Atoi(gid); err != nil {
		return members, nil
	}
	err = eachLine(passwdFile, func(f []string) {
		if len(f) >= 4 && f[3] == gid && !slices.Contains(members, f[0]) {
			members = append(members, f[0]+" (primary group)")
		}
	})
	return members, err
}

func eachLine(path string, fn func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}
