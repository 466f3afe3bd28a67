package daemonconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultUnitDirs are the directories searched for docker.service, in
// systemd's precedence order, lowest first: a unit in /etc/systemd/system
// overrides the packaged one (systemd.unit(5), "Unit File Load Path").
// On merged-/usr systems /lib is /usr/lib and both find the same file.
var DefaultUnitDirs = []string{"/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system"}

// DropInName is the name of the drop-in WriteDropIn writes in
// docker.service.d.
const DropInName = "dtls-tls.conf"

// Unit is docker.service as systemd would run it.
type Unit struct {
	// Path is the docker.service file found.
	Path string
	// DropIns are the docker.service.d/*.conf files applied, in order.
	DropIns []string
	// ExecStart is the effective ExecStart command line, after drop-ins
	// (an empty "ExecStart=" clears it; the last one wins) and with
	// continuation lines joined.
	ExecStart string
	// Hosts are the values of -H, --host, -H=, --host= and -Hvalue in
	// ExecStart, e.g. ["fd://"] for Debian's and Docker's packages.
	Hosts []string
	// Args is ExecStart without the host flags, other arguments kept
	// verbatim (including variables such as $DOCKER_OPTS, which are not
	// expanded: flags hidden in them are not seen).
	Args string

	// VarHosts are host flags found only once the variables of ExecStart
	// are expanded from Environment= and EnvironmentFile= (Ubuntu's old
	// DOCKER_OPTS="-H tcp://0.0.0.0:2375" in /etc/default/docker). A
	// drop-in cannot remove them: they must be deleted where they are set.
	VarHosts []string
	// VarSource names where VarHosts come from, for the error message.
	VarSource string
	// Expanded is Args with the variables expanded (equal to Args when it
	// has none): the flags dockerd really gets, other than -H.
	Expanded string

	// execStartFrom is the file that set ExecStart.
	execStartFrom string
}

// FindUnit looks for docker.service in dirs (a later dir overrides an earlier
// one, as /etc/systemd/system overrides /lib/systemd/system) and for its
// docker.service.d/*.conf drop-ins in every dir. Drop-ins are applied in
// file-name order whichever dir they are in, and one overrides a drop-in of
// the same name in an earlier dir (systemd.unit(5), "drop-in"). It returns
// nil, nil when there is no docker.service.
func FindUnit(dirs []string) (*Unit, error) {
	path, dropIns, err := locateUnit(dirs)
	if err != nil || path == "" {
		return nil, err
	}
	u := &Unit{Path: path}
	names := make([]string, 0, len(dropIns))
	for n := range dropIns {
		names = append(names, n)
	}
	sort.Strings(names)

	files := []string{u.Path}
	for _, n := range names {
		u.DropIns = append(u.DropIns, dropIns[n])
		files = append(files, dropIns[n])
	}
	execStart, envFiles, env, err := u.readFiles(files)
	if err != nil {
		return nil, err
	}
	if len(execStart) > 0 {
		u.ExecStart = execStart[len(execStart)-1]
	}
	u.Hosts, u.Args = splitHosts(u.ExecStart)
	u.Expanded = u.Args
	if strings.Contains(u.Args, "$") {
		if err := u.expand(env, envFiles); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// locateUnit returns the path of docker.service in dirs ("" when there is
// none; a later dir wins) and its drop-ins by file name (a later dir's
// wins). A masked unit is an error.
func locateUnit(dirs []string) (string, map[string]string, error) {
	path := ""
	dropIns := map[string]string{}
	for _, dir := range dirs {
		p := filepath.Join(dir, "docker.service")
		if fi, err := os.Lstat(p); err == nil {
			if fi.Mode()&fs.ModeSymlink != 0 {
				if t, _ := os.Readlink(p); t == "/dev/null" {
					return "", nil, fmt.Errorf("docker.service is masked (%q links to /dev/null)", p)
				}
			}
			path = p
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("read unit %q: %w", p, err)
		}
		confs, err := filepath.Glob(filepath.Join(dir, "docker.service.d", "*.conf"))
		if err != nil {
			return "", nil, err
		}
		for _, c := range confs {
			dropIns[filepath.Base(c)] = c
		}
	}
	return path, dropIns, nil
}

// readFiles reads the unit and its drop-ins in the order systemd applies
// them: the ExecStart= and EnvironmentFile= lists (an empty assignment
// resets a list) and the Environment= variables. It records in
// u.execStartFrom the file that set ExecStart last.
func (u *Unit) readFiles(files []string) (execStart, envFiles []string, env map[string]string, err error) {
	env = map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read unit %q: %w", f, err)
		}
		for _, v := range serviceValues(data, "Environment") {
			for _, w := range splitWords(v) {
				if k, val, ok := strings.Cut(w.value, "="); ok {
					env[k] = val
				}
			}
		}
		for _, v := range serviceValues(data, "EnvironmentFile") {
			if v == "" {
				envFiles = nil
				continue
			}
			envFiles = append(envFiles, v)
		}
		for _, v := range serviceValues(data, "ExecStart") {
			if v == "" {
				execStart = nil
				continue
			}
			execStart = append(execStart, v)
			u.execStartFrom = f
		}
	}
	return execStart, envFiles, env, nil
}

// expand expands the variables of u.Args with env and the environment
// files, into u.Expanded, and records the hosts that come from variables
// (u.VarHosts) and where those variables are set (u.VarSource).
func (u *Unit) expand(env map[string]string, envFiles []string) error {
	sources := map[string]string{}
	for k := range env {
		sources[k] = "Environment= of docker.service"
	}
	// systemd.exec(5): files are read in order, a later assignment
	// wins, and a "-" prefix means a missing file is not an error.
	for _, f := range envFiles {
		optional := strings.HasPrefix(f, "-")
		f = strings.TrimPrefix(f, "-")
		data, err := os.ReadFile(f)
		if err != nil {
			if optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("read environment file %q of %q: %w", f, u.Path, err)
		}
		for k, v := range parseEnvFile(data) {
			env[k] = v
			sources[k] = f
		}
	}
	expanded := os.Expand(u.Args, func(k string) string { return env[k] })
	var hosts []string
	hosts, u.Expanded = splitHosts(expanded)
	if len(hosts) == 0 {
		return nil
	}
	u.VarHosts = hosts
	var from []string
	for _, w := range splitWords(u.Args) {
		for k, src := range sources {
			if h, _ := splitHosts("dockerd " + env[k]); len(h) == 0 {
				continue
			}
			if strings.Contains(w.raw, "$"+k) || strings.Contains(w.raw, "${"+k+"}") {
				from = append(from, "$"+k+" in "+src)
			}
		}
	}
	sort.Strings(from)
	u.VarSource = strings.Join(from, ", ")
	return nil
}

// parseEnvFile reads KEY=VALUE lines the way systemd's EnvironmentFile= does
// (systemd.exec(5)): '#' and ';' start comments, values may be quoted, and
// an "export " prefix is not part of the format but is common and harmless
// to accept.
func parseEnvFile(data []byte) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimRight(line, "\r"))
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[strings.TrimSpace(k)] = v
	}
	return env
}

// serviceValues returns the values of key in the [Service] section of a unit
// file, in order, with continuation lines joined (systemd replaces a
// backslash at the end of a line, and the newline, with a space).
func serviceValues(data []byte, key string) []string {
	var vals []string
	section := ""
	var logical strings.Builder
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		line = strings.TrimRight(line, "\r")
		if logical.Len() > 0 {
			// systemd skips comment lines inside a continued line.
			if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
				if i < len(lines)-1 {
					continue
				}
				line = ""
			}
		}
		if strings.HasSuffix(line, `\`) && i < len(lines)-1 {
			logical.WriteString(line[:len(line)-1] + " ")
			continue
		}
		logical.WriteString(line)
		l := strings.TrimSpace(logical.String())
		logical.Reset()
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			section = strings.TrimSuffix(l[1:], "]")
		case section == "Service":
			k, v, ok := strings.Cut(l, "=")
			if ok && strings.TrimSpace(k) == key {
				vals = append(vals, strings.TrimSpace(v))
			}
		}
	}
	return vals
}

// word is one argument of a command line, with its text as written.
type word struct {
	raw, value string
}

// splitWords splits a command line the way systemd does for ExecStart:
// whitespace-separated words, with "double" and 'single' quotes and
// backslash escapes (systemd.service(5), "Command lines").
func splitWords(s string) []word {
	var words []word
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			return words
		}
		start := i
		var val strings.Builder
		var quote byte
		for ; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s) && quote != '\'':
				i++
				val.WriteByte(s[i])
			case quote != 0 && c == quote:
				quote = 0
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote == 0 && (c == ' ' || c == '\t'):
				goto done
			default:
				val.WriteByte(c)
			}
		}
	done:
		words = append(words, word{raw: s[start:i], value: val.String()})
	}
}

// splitHosts takes the host flags out of a dockerd command line, in every
// form dockerd's pflag accepts ("-H v", "-H=v", "-Hv", "--host v",
// "--host=v", and combined with boolean short flags, "-DH v"): see
// ParseDockerdFlags.
func splitHosts(cmdline string) (hosts []string, args string) {
	removed, args := removeFlags(cmdline, func(name string) bool { return name == "host" })
	for _, f := range removed {
		hosts = append(hosts, f.Value)
	}
	return hosts, args
}

// dropInHeader explains the drop-in to whoever finds it. It is the same on
// every run, so WriteDropIn can tell whether the file is up to date.
const dropInHeader = `# Written by dtls.
#
# dtls moved the -H (--host) flags of docker.service into "hosts" in
# daemon.json, next to its TLS settings. dockerd refuses to start when a
# setting is given both as a flag and in daemon.json:
#
#   unable to configure the Docker daemon with file /etc/docker/daemon.json:
#   the following directives are specified both as a flag and in the
#   configuration file: hosts: (from flag: [fd://], from file: [...])
#
# so this drop-in clears ExecStart and repeats it without the -H flags, as
# Docker's documentation recommends: "Configure the Docker daemon"
# https://docs.docker.com/engine/daemon/ and "Use the hosts key in
# daemon.json with systemd" in
# https://docs.docker.com/engine/daemon/troubleshoot/
# Run "systemctl daemon-reload" after changing it.
`

// DropIn returns the content of the drop-in that clears ExecStart and
// repeats it without the host flags, with a comment saying why. The TLS
// flags (--tls, --tlsverify, --tlscacert, --tlscert, --tlskey) are left out
// too: Merge writes them into daemon.json, and dockerd refuses a setting
// given both ways ("tlsverify: (from flag: true, from file: true)", seen
// with dockerd 20.10).
func (u *Unit) DropIn() []byte {
	return []byte(dropInHeader + "[Service]\nExecStart=\nExecStart=" + withoutTLSFlags(u.Args) + "\n")
}

// NeedsDropIn reports whether ExecStart passes a flag whose setting Merge
// puts into daemon.json (-H, or a TLS flag): dockerd refuses to start with
// a setting given both ways, so the drop-in must take it out.
func (u *Unit) NeedsDropIn() bool {
	return len(u.Hosts) > 0 || withoutTLSFlags(u.Args) != u.Args
}

// HiddenTLSFlags reports whether a TLS flag reaches dockerd only through a
// variable of ExecStart ($DOCKER_OPTS): like VarHosts, a drop-in cannot
// take it out.
func (u *Unit) HiddenTLSFlags() bool {
	expanded, _ := removeFlags(u.Expanded, isTLSFlag)
	written, _ := removeFlags(u.Args, isTLSFlag)
	return len(expanded) > len(written)
}

// tlsFlags are the dockerd flags whose settings Merge owns in daemon.json.
var tlsFlags = map[string]bool{"tls": true, "tlsverify": true, "tlscacert": true, "tlscert": true, "tlskey": true}

func isTLSFlag(name string) bool { return tlsFlags[name] }

// withoutTLSFlags removes the tlsFlags from a dockerd command line, in every
// form pflag accepts ("--tlscert v", "--tlscert=v", "--tlsverify=true"),
// keeping the other words as written.
func withoutTLSFlags(cmdline string) string {
	_, kept := removeFlags(cmdline, isTLSFlag)
	return kept
}

// PlanDropIn says what WriteDropIn would write: the drop-in's path and
// content, and whether it differs from what is there. It writes nothing.
func PlanDropIn(dir string, u *Unit) (path string, content []byte, changed bool, err error) {
	path = filepath.Join(dir, "docker.service.d", DropInName)
	if u.ExecStart == "" {
		return path, nil, false, fmt.Errorf("write drop-in %q: %q has no ExecStart", path, u.Path)
	}
	if from := u.execStartFrom; from != u.Path && filepath.Base(from) > DropInName {
		return path, nil, false, fmt.Errorf("write drop-in %q: ExecStart is set by %q, which systemd applies after it; remove the -H flags there", path, from)
	}
	want := u.DropIn()
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want) {
		return path, want, false, nil
	}
	return path, want, true, nil
}
