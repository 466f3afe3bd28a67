package authz

import (
	"fmt"
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
// may mount the host path src: it must be clean and absolute, resolve to
// a path under one of the policy's bind roots ("{user}" is the caller's
// name), and neither be, lie under nor contain a protected path (the
// built-in ones, the policy's, dtls's own directories and dockerd's
// data-root, exec-root and sockets), compared in both their written and
// resolved forms. It returns "" when allowed, or why not.
func (h *hostPaths) judgeBindSource(src, user string, resolve, resolveFixed func(string) string) string {
	if !cleanAbs(src) {
		return fmt.Sprintf("%q is not a clean absolute path (no \".\", \"..\" or \"//\")", src)
	}
	real := resolve(src)
	shown := src
	if real != filepath.Clean(src) {
		shown = fmt.Sprintf("%s (resolved on the host: %s)", src, real)
	}
	if real == "/" {
		return shown + " is the host's whole file system"
	}
	// The closest protected path names the reason: "is" before "is
	// under" (the longest) before "contains".
	best, bestRel, rank := "", "", 0
	for _, prot := range h.protected {
		for _, cand := range []string{filepath.Clean(src), real} {
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
	for _, root := range h.roots {
		if strings.Contains(root, "{user}") {
			if user == "" || user == unixOwner || !userSegment().MatchString(user) {
				continue
			}
			root = strings.ReplaceAll(root, "{user}", user)
		}
		if within(real, resolveFixed(root)) {
			return ""
		}
	}
	if len(h.roots) == 0 {
		return shown + " is not under a bind root: the policy has none (\"bind_roots\"), so no host path may be mounted"
	}
	return fmt.Sprintf("%s is not under a bind root of the policy (%s)", shown, strings.Join(h.roots, ", "))
}
