package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// POSIX ACLs as Linux stores them in the extended attribute
// system.posix_acl_access (include/uapi/linux/posix_acl_xattr.h): a
// little-endian header {version u32 = 2}, then one entry {tag u16, perm
// u16, id u32} per ACL entry.
const (
	aclXattr   = "system.posix_acl_access"
	aclVersion = 2

	aclUserObj  = 0x01 // the owner
	aclUser     = 0x02 // a named user (id is the uid)
	aclGroupObj = 0x04 // the owning group
	aclGroup    = 0x08 // a named group (id is the gid)
	aclMask     = 0x10 // the most any named entry or the owning group gets
	aclOther    = 0x20

	aclWrite = 0x02
)

// errACLNotChecked is returned where ACLs cannot be read (not Linux).
var errACLNotChecked = errors.New("ACLs are checked on Linux only")

// aclEntry is one entry of a POSIX ACL.
type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// parseACL decodes the value of system.posix_acl_access.
func parseACL(b []byte) ([]aclEntry, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 {
		return nil, fmt.Errorf("ACL of %d bytes: want a 4-byte header and 8-byte entries", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != aclVersion {
		return nil, fmt.Errorf("ACL version %d, want %d", v, aclVersion)
	}
	var es []aclEntry
	for p := b[4:]; len(p) > 0; p = p[8:] {
		es = append(es, aclEntry{tag: binary.LittleEndian.Uint16(p), perm: binary.LittleEndian.Uint16(p[2:]), id: binary.LittleEndian.Uint32(p[4:])})
	}
	return es, nil
}

// aclGrant is a named user or group an ACL lets connect.
type aclGrant struct {
	group bool
	id    uint32
}

// aclWriters lists the named users and groups of an ACL that may write to
// the file, which for a unix socket is what connect(2) needs (unix(7): "On
// Linux, connecting to a stream socket object requires write permission on
// that socket"). A named
// entry's permissions are limited by the mask (acl(5), "ACCESS CHECK
// ALGORITHM"). The owner, the owning group and others are what the mode
// shows, and are checked there.
func aclWriters(es []aclEntry) []aclGrant {
	mask := uint16(0x7)
	for _, e := range es {
		if e.tag == aclMask {
			mask = e.perm
		}
	}
	var out []aclGrant
	for _, e := range es {
		if (e.tag == aclUser || e.tag == aclGroup) && e.perm&mask&aclWrite != 0 {
			out = append(out, aclGrant{group: e.tag == aclGroup, id: e.id})
		}
	}
	return out
}

// idNames maps the numeric ids of a passwd(5) or group(5) file (the third
// field of both) to names. An unreadable file gives an empty map: the ids
// are then shown as numbers.
func idNames(path string) map[uint32]string {
	names := map[uint32]string{}
	f, err := os.Open(path)
	if err != nil {
		return names
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		if id, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
			if _, dup := names[uint32(id)]; !dup {
				names[uint32(id)] = fields[0]
			}
		}
	}
	return names
}

// checkSocketACL reports the users and groups a POSIX ACL on the socket
// lets use the daemon (setfacl -m u:jenkins:rw /var/run/docker.sock, a
// common way to let a CI user in): each of them is root on the host, as a
// member of group docker is, but neither the mode nor group docker shows
// them.
func (a *auditor) checkSocketACL(sock string) {
	es, err := readACL(sock)
	switch {
	case errors.Is(err, errACLNotChecked):
		a.add(Finding{ID: "socket-acl", Status: Skip, Title: "socket ACL not checked", Detail: err.Error()})
		return
	case err != nil:
		a.add(Finding{ID: "socket-acl", Status: Skip, Title: "socket ACL not checked", Detail: why(sock, err)})
		return
	}
	grants := aclWriters(es)
	if len(grants) == 0 {
		a.add(Finding{ID: "socket-acl", Status: Pass, Title: fmt.Sprintf("socket %s has no ACL entry that lets another user or group in", sock)})
		return
	}
	users, groups := idNames(a.cfg.Passwd), idNames(a.cfg.Group)
	var who, spec []string
	for _, g := range grants {
		kind, tag, names := "user", "u", users
		if g.group {
			kind, tag, names = "group", "g", groups
		}
		name, ok := names[g.id]
		if !ok {
			name = strconv.FormatUint(uint64(g.id), 10)
		}
		who = append(who, kind+" "+name)
		spec = append(spec, tag+":"+name)
	}
	a.add(Finding{ID: "socket-acl", Status: Warn,
		Title:  fmt.Sprintf("socket %s has an ACL that also lets in %s, each root-equivalent on this host", sock, strings.Join(who, ", ")),
		Detail: "an ACL entry with write permission on the socket admits its user or group to the daemon, beside the owner and group its mode shows",
		Fix: fmt.Sprintf("sudo setfacl -x %s %s, and remove what sets it (a unit's ExecStartPost, a tmpfiles or udev rule): dockerd recreates the socket when it starts; "+
			"for a CI job, a client certificate with a limited role ('dtls issue-client NAME --role ...') is the way in", strings.Join(spec, ","), sock)})
}
