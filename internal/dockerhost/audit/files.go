package audit

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// dockerGroup is the group whose members may use the daemon's socket.
type dockerGroup struct {
	gid     uint32
	members []string
}

// readGroup finds group docker in a group(5) file; nil when there is none.
func readGroup(path string) (*dockerGroup, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// name:password:GID:user1,user2
		fields := strings.Split(sc.Text(), ":")
		if len(fields) != 4 || fields[0] != "docker" {
			continue
		}
		gid, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: group docker has GID %q", path, fields[2])
		}
		g := &dockerGroup{gid: uint32(gid)}
		for _, m := range strings.Split(fields[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				g.members = append(g.members, m)
			}
		}
		return g, nil
	}
	return nil, sc.Err()
}

// primaryMembers lists the users of a passwd(5) file whose primary group is
// gid: group(5) does not name them, yet they are in the group.
func primaryMembers(path string, gid uint32) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var users []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// name:password:UID:GID:gecos:home:shell
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 {
			continue
		}
		if g, err := strconv.ParseUint(fields[3], 10, 32); err == nil && uint32(g) == gid {
			users = append(users, fields[0])
		}
	}
	return users, sc.Err()
}

// rootOnly reports whether sock is a socket of owner and group root
// (dtls init --local): group docker no longer reaches it.
func rootOnly(sock string) bool {
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 {
		return false
	}
	uid, gid, ok := owner(fi)
	return ok && uid == 0 && gid == 0
}

// checkSocket checks the daemon's unix socket (CIS 3.15, 3.16) and lists
// group docker. Whoever can connect to the socket can start a privileged
// container with the host's / mounted: group docker is root
// (https://docs.docker.com/engine/security/#docker-daemon-attack-surface).
func (a *auditor) checkSocket() {
	sock := a.cfg.Socket
	grp, gerr := readGroup(a.cfg.Group)
	primaryNote := ""
	if grp != nil {
		primary, err := primaryMembers(a.cfg.Passwd, grp.gid)
		if err != nil {
			primaryNote = "; users whose primary group is docker were not listed: " + why(a.cfg.Passwd, err)
		}
		for _, u := range primary {
			if !contains(grp.members, u) {
				grp.members = append(grp.members, u+" (primary group)")
			}
		}
	}
	switch {
	case gerr != nil:
		a.add(Finding{ID: "docker-group", Status: Skip, Title: "members of group docker not checked", Detail: why(a.cfg.Group, gerr)})
	case grp != nil && len(grp.members) > 0 && rootOnly(sock):
		// dtls init --local: the members use the gateway's socket.
		a.add(Finding{ID: "docker-group", Status: Pass,
			Title:  fmt.Sprintf("group docker has %d members, but the socket %s is root's alone (root:root): they do not reach it", len(grp.members), sock),
			Detail: "local accounts reach Docker through the dtls gateway's socket, with the role its policy gives them" + primaryNote})
	case grp == nil:
		a.add(Finding{ID: "docker-group", Status: Pass, Title: "there is no group docker: only root can use the socket"})
	case len(grp.members) == 0:
		a.add(Finding{ID: "docker-group", Status: Pass, Title: "group docker has no members", Detail: strings.TrimPrefix(primaryNote, "; ")})
	default:
		a.add(Finding{ID: "docker-group", Status: Warn,
			Title:  fmt.Sprintf("group docker has %d members, each root-equivalent on this host: %s", len(grp.members), strings.Join(grp.members, ", ")),
			Detail: "a member can run 'docker run -v /:/host --privileged' and own the host" + primaryNote,
			Fix: fmt.Sprintf("sudo gpasswd -d %[1]s docker (for each who does not need it; for a primary group: usermod -g); "+
				"with the dtls gateway, give them a role on its local socket instead: 'sudo dtls role --unix-user %[1]s developer', "+
				"and DOCKER_HOST=unix:///run/dtls/docker.sock", strings.TrimSuffix(grp.members[0], " (primary group)"))})
	}

	fi, err := os.Lstat(sock)
	if err != nil {
		reason := why(sock, err)
		a.add(Finding{ID: "socket-owner", CIS: "3.15", Status: Skip, Title: "socket ownership not checked", Detail: reason})
		a.add(Finding{ID: "socket-mode", CIS: "3.16", Status: Skip, Title: "socket permissions not checked", Detail: reason})
		return
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		a.add(Finding{ID: "socket-owner", CIS: "3.15", Status: Warn, Title: fmt.Sprintf("%s is not a socket (%s)", sock, fi.Mode().Type()), Fix: "dtls audit --socket PATH, with the socket dockerd listens on"})
		return
	}
	uid, gid, ok := owner(fi)
	switch {
	case !ok:
		a.add(Finding{ID: "socket-owner", CIS: "3.15", Status: Skip, Title: "socket ownership not checked", Detail: "no owner information on this platform"})
	case uid != 0:
		a.add(Finding{ID: "socket-owner", CIS: "3.15", Status: Fail,
			Title:  fmt.Sprintf("socket %s is owned by uid %d, not root", sock, uid),
			Detail: "its owner can use the daemon, i.e. is root",
			Fix:    "sudo chown root:docker " + sock})
	case grp != nil && gid == grp.gid:
		a.add(Finding{ID: "socket-owner", CIS: "3.15", Status: Pass, Title: fmt.Sprintf("socket %s is owned by root:docker", sock)})
	case gid == 0:
		a.add(Finding{ID: "socket-owner", CIS: "3.15", Status: Pass, Title: fmt.Sprintf("socket %s is owned by root:root (stricter than root:docker)", sock)})
	default:
		a.add(Finding{ID: "socket-owner", CIS: "3.15", Status: Fail,
			Title:  fmt.Sprintf("socket %s has group %d, not docker", sock, gid),
			Detail: "every member of that group can use the daemon, i.e. is root",
			Fix:    "sudo chown root:docker " + sock})
	}
	if perm := fi.Mode().Perm(); perm&^0o660 != 0 {
		a.add(Finding{ID: "socket-mode", CIS: "3.16", Status: Fail,
			Title:  fmt.Sprintf("socket %s has mode %04o, want 0660 or stricter", sock, perm),
			Detail: "every local user can use the daemon, i.e. is root",
			Fix:    "sudo chmod 660 " + sock})
	} else {
		a.add(Finding{ID: "socket-mode", CIS: "3.16", Status: Pass, Title: fmt.Sprintf("socket %s has mode %04o", sock, perm)})
	}
	a.checkSocketACL(sock)
}

// tlsFiles are the daemon's TLS files and the directory the CA key must not
// be in.
type tlsFiles struct {
	certsDir          string
	caCert, cert, key string
}

func (a *auditor) tlsFiles(d *daemonConf) tlsFiles {
	// An explicit certs directory wins over the directories daemon.json
	// names: it is what the caller asked to have checked (a copy, or the
	// directory of another daemon). daemon.json's base names are kept.
	if dir := a.cfg.CertsDir; dir != "" {
		in := func(p, name string) string {
			if p != "" {
				name = filepath.Base(p)
			}
			return filepath.Join(dir, name)
		}
		return tlsFiles{
			certsDir: dir,
			caCert:   in(d.tlsCACert, "ca.pem"),
			cert:     in(d.tlsCert, "server-cert.pem"),
			key:      in(d.tlsKey, "server-key.pem"),
		}
	}
	var dir string
	switch {
	case d.tlsCert != "":
		dir = filepath.Dir(d.tlsCert)
	case d.tlsCACert != "":
		dir = filepath.Dir(d.tlsCACert)
	default:
		dir = DefaultCertsDir
	}
	or := func(p, name string) string {
		if p != "" {
			return p
		}
		return filepath.Join(dir, name)
	}
	return tlsFiles{
		certsDir: dir,
		caCert:   or(d.tlsCACert, "ca.pem"),
		cert:     or(d.tlsCert, "server-cert.pem"),
		key:      or(d.tlsKey, "server-key.pem"),
	}
}

// checkFiles checks owners and modes (CIS 3.5, 3.6, 3.9-3.14, 3.17, 3.18).
func (a *auditor) checkFiles(d *daemonConf) {
	if a.cfg.DaemonJSON != "" {
		dir := filepath.Dir(a.cfg.DaemonJSON)
		a.checkFile(dir, fileRule{what: "directory", idOwner: "etc-docker-owner", idMode: "etc-docker-mode", cisOwner: "3.5", cisMode: "3.6", maxMode: 0o755})
		a.checkFile(a.cfg.DaemonJSON, fileRule{what: "daemon.json", idOwner: "daemon-json-owner", idMode: "daemon-json-mode", cisOwner: "3.17", cisMode: "3.18", maxMode: 0o644})
	}
	// The units that start dockerd and its socket (CIS 3.1-3.4): whoever
	// can write them chooses what runs as root.
	if d.unit != nil {
		a.checkFile(d.unit.Path, fileRule{what: "docker.service", idOwner: "docker-service-owner", idMode: "docker-service-mode", cisOwner: "3.1", cisMode: "3.2", maxMode: 0o644})
	}
	if sock := findUnitFile(a.cfg.SystemdDirs, "docker.socket"); sock != "" {
		a.checkFile(sock, fileRule{what: "docker.socket", idOwner: "docker-socket-unit-owner", idMode: "docker-socket-unit-mode", cisOwner: "3.3", cisMode: "3.4", maxMode: 0o644})
	}
	if !d.tlsVerify && !d.tls {
		if _, err := os.Stat(a.tlsFiles(d).cert); err != nil {
			// No TLS configured and no certificate: nothing to check.
			return
		}
	}
	f := a.tlsFiles(d)
	a.checkFile(f.caCert, fileRule{what: "CA certificate", idOwner: "ca-cert-owner", idMode: "ca-cert-mode", cisOwner: "3.9", cisMode: "3.10", maxMode: 0o444})
	a.checkFile(f.cert, fileRule{what: "server certificate", idOwner: "server-cert-owner", idMode: "server-cert-mode", cisOwner: "3.11", cisMode: "3.12", maxMode: 0o444})
	a.checkFile(f.key, fileRule{what: "server key", idOwner: "server-key-owner", idMode: "server-key-mode", cisOwner: "3.13", cisMode: "3.14", maxMode: 0o400, exact: true})
}

// findUnitFile returns the unit file name in the last of dirs that has it,
// the one systemd uses (/etc/systemd/system overrides /lib/systemd/system).
func findUnitFile(dirs []string, name string) string {
	found := ""
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Lstat(p); err == nil {
			found = p
		}
	}
	return found
}
