package authz

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Host paths are judged as they resolve on this host, where dockerd
// mounts them: a symbolic link planted in a directory a container may
// write (/srv/work/alice/etc -> /etc) is followed by mount(2), so the
// policy follows it too, and judges where it leads. A path with "." or
// ".." segments or doubled slashes is refused rather than read two ways
// (dockerd cleans a bind source, moby volume/mounts/linux_parser.go,
// the kernel then resolves symbolic links in what is left).

// resolveHostPath resolves the symbolic links of the longest part of p
// that exists, and appends the rest as written: dockerd makes a missing
// bind source with MkdirAll (moby volume/mounts/mounts.go Setup), which
// follows the links of the part that exists.
func resolveHostPath(p string) string {
	cur, rest := filepath.Clean("/"+p), ""
	for {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		if cur == "/" {
			return filepath.Join("/", rest)
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = filepath.Dir(cur)
	}
}

// resolvedPaths caches the resolution of the protected paths and bind
// roots, which every create with a bind would otherwise resolve again: a
// second is as long as a link swapped on them goes unseen.
var resolvedPaths struct {
	sync.Mutex
	m map[string]resolvedPath
}

type resolvedPath struct {
	real string
	at   time.Time
}

// resolveCached is resolveHostPath, remembered for a second.
func resolveCached(p string) string {
	now := time.Now()
	resolvedPaths.Lock()
	defer resolvedPaths.Unlock()
	if r, ok := resolvedPaths.m[p]; ok && now.Sub(r.at) < time.Second && !now.Before(r.at) {
		return r.real
	}
	if resolvedPaths.m == nil || len(resolvedPaths.m) > 4096 {
		resolvedPaths.m = map[string]resolvedPath{}
	}
	real := resolveHostPath(p)
	resolvedPaths.m[p] = resolvedPath{real, now}
	return real
}

// cleanAbs reports whether p is an absolute path already clean.
func cleanAbs(p string) bool {
	return strings.HasPrefix(p, "/") && !strings.Contains(p, "//") && (p == "/" || filepath.Clean(p) == strings.TrimSuffix(p, "/"))
}

// within reports whether p is dir or under it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// pathRelation says how a source relates to a protected path: "" when
// they are apart.
func pathRelation(src, prot string) string {
	switch {
	case src == prot:
		return "is"
	case within(src, prot):
		return "is under"
	case within(prot, src):
		return "contains"
	}
	return ""
}

// hostPaths is the resolved form of the protected paths and bind roots,
// computed once per policy and set of extra paths.
type hostPaths struct {
	protected []string // raw and resolved, deduplicated
	roots     []string // templates, "{user}" kept; resolved at use
}

var userSegment = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`) })

// judgeBindSource decides whether the holder of a role that is not admin
// may mount the host path src. It must be clean and absolute, and be
// exactly one of the policy's bind roots ("{user}" is the caller's name):
// not a path below one, because whatever a container may write (its
// workspace) it may turn into a symbolic link (to "/", or through
// /proc/PID/root, which no resolution on the host can follow) between
// the check and the mount, or before dockerd restarts the container by
// itself. The root must exist as this process sees it, its ancestors must
// be root's and writable by root alone (nobody else can swap them), and
// its file system must be mounted nosuid,nodev (a container's root makes
// setuid files and device nodes in it, which the holder's host account
// could use). It must neither be, lie under nor contain a protected path
// (the built-in ones, the policy's, dtls's own directories and dockerd's
// data-root, exec-root and sockets), compared in both their written and
// resolved forms. It returns "" when allowed, or why not.
func (h *hostPaths) judgeBindSource(src, user string, resolve, resolveFixed, checkRoot func(string) string) string {
	if !cleanAbs(src) {
		return fmt.Sprintf("%q is not a clean absolute path (no \".\", \"..\" or \"//\")", src)
	}
	clean := filepath.Clean(src)
	real := resolve(src)
	shown := src
	if real != clean {
		shown = fmt.Sprintf("%s (resolved on the host: %s)", src, real)
	}
	if real == "/" {
		return shown + " is the host's whole file system"
	}
	// The closest protected path names the reason: "is" before "is
	// under" (the longest) before "contains".
	best, bestRel, rank := "", "", 0
	for _, prot := range h.protected {
		for _, cand := range []string{clean, real} {
			rel := pathRelation(cand, prot)
			r := map[string]int{"is": 3, "is under": 2, "contains": 1}[rel]
			if r > rank || r == rank && r == 2 && len(prot) > len(best) {
				best, bestRel, rank = prot, rel, r
			}
		}
	}
	if rank > 0 {
		return fmt.Sprintf("%s %s %s, a protected host path", shown, bestRel, best)
	}
	var roots []string
	for _, root := range h.roots {
		if strings.Contains(root, "{user}") {
			if user == "" || user == unixOwner || !userSegment().MatchString(user) {
				continue
			}
			root = strings.ReplaceAll(root, "{user}", user)
		}
		roots = append(roots, root)
		if clean == root {
			return checkRoot(root)
		}
	}
	switch {
	case len(h.roots) == 0:
		return shown + " is not a bind root: the policy has none (\"bind_roots\"), so no host path may be mounted"
	case len(roots) == 0:
		return shown + " is not a bind root: the policy's are per user ({user}) and this caller has no user name"
	}
	for _, root := range roots {
		if within(clean, root) || within(real, resolveFixed(root)) {
			return fmt.Sprintf("%s is below the bind root %s: only a bind root itself may be mounted (whatever is below it, a container may swap for a symbolic link before the mount)", shown, root)
		}
	}
	return fmt.Sprintf("%s is not a bind root of the policy (%s)", shown, strings.Join(roots, ", "))
}

// rootProblem checks a bind root on the host: it exists, its ancestors
// are root's and no one else may write them, its file system is nosuid
// and nodev. "" when it may be mounted.
func rootProblem(root string, resolve func(string) string) string {
	real := resolve(root)
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Sprintf("the bind root %s cannot be mounted: %v (the plugin must see it as dockerd does: make it, as root)", root, unwrapPath(err))
	}
	if !fi.IsDir() {
		return fmt.Sprintf("the bind root %s is not a directory", root)
	}
	for child, dir := real, filepath.Dir(real); ; child, dir = dir, filepath.Dir(dir) {
		if why := ancestorProblem(dir, child); why != "" {
			return fmt.Sprintf("the bind root %s cannot be mounted: its ancestor %s %s: whoever may write it can swap the root for a symbolic link", root, dir, why)
		}
		if dir == "/" {
			break
		}
	}
	if why := mountFlagsProblem(real); why != "" {
		return fmt.Sprintf("the bind root %s cannot be mounted: %s", root, why)
	}
	return ""
}
