package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dtls-tool/dtls/internal/atomicfile"
)

// DefaultAuditdRulesDir is where augenrules(8) reads the rules files that
// it compiles into the kernel's rules at boot.
const DefaultAuditdRulesDir = "/etc/audit/rules.d"

// AuditdRulesFile is the file WriteAuditdRules writes in the rules
// directory.
const AuditdRulesFile = "dtls-docker.rules"

// OwnFile is a file or directory of dtls's for auditd to watch.
type OwnFile struct {
	// What names it in findings: "dtls's state directory".
	What string
	Path string
}

// auditdTarget is a file or directory the CIS Docker Benchmark (1.1.3 to
// 1.1.18) or dtls wants auditd to watch for writes and attribute changes
// (-w PATH -p wa): a change to the daemon, its runtime, its configuration
// or dtls's trust anchors is then in the host's own audit log, whoever
// made it.
type auditdTarget struct {
	cis  string
	what string
	path string
	key  string // the rule's key (-k): "docker", or "dtls" for dtls's own
}

// defaultBinDirs are searched for the daemon's binaries after $PATH.
var defaultBinDirs = []string{"/usr/bin", "/usr/local/bin", "/usr/sbin", "/usr/local/sbin", "/bin", "/sbin"}

// findBinary finds a program in dirs (default: $PATH, then defaultBinDirs) and
// resolves its symbolic links: auditd watches the inode of the real file.
func findBinary(dirs []string, name string) string {
	if len(dirs) == 0 {
		dirs = append(filepath.SplitList(os.Getenv("PATH")), defaultBinDirs...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				return real
			}
			return p
		}
	}
	return ""
}

// auditdTargets lists what auditd should watch on this host, in the
// benchmark's order (docker-bench-security tests/1_host_configuration.sh,
// check_1_1_3 to check_1_1_18), then dtls's own files. Binaries not found
// are listed under their usual path (in the first of BinDirs when given),
// so that their absence is reported.
func (a *auditor) auditdTargets(d *daemonConf) []auditdTarget {
	bin := func(name string) string {
		if p := findBinary(a.cfg.BinDirs, name); p != "" {
			return p
		}
		if len(a.cfg.BinDirs) > 0 {
			return filepath.Join(a.cfg.BinDirs[0], name)
		}
		return "/usr/bin/" + name
	}
	dataRoot := "/var/lib/docker"
	if v := d.jsonString("data-root"); v != "" {
		dataRoot = v
	} else if v := d.flags["data-root"]; len(v) > 0 && v[0] != "" {
		dataRoot = v[0]
	}
	service := "/usr/lib/systemd/system/docker.service"
	if d.unit != nil {
		service = d.unit.Path
	}
	socket := findUnitFile(a.cfg.SystemdDirs, "docker.socket")
	if socket == "" {
		socket = "/usr/lib/systemd/system/docker.socket"
	}
	daemonJSON := a.cfg.DaemonJSON
	if daemonJSON == "" {
		daemonJSON = "/etc/docker/daemon.json"
	}
	ts := []auditdTarget{
		{"1.1.3", "the Docker daemon", bin("dockerd"), "docker"},
		{"1.1.4", "containerd's state", "/run/containerd", "docker"},
		{"1.1.5", "Docker's data root", dataRoot, "docker"},
		{"1.1.6", "Docker's configuration", filepath.Dir(daemonJSON), "docker"},
		{"1.1.7", "docker.service", service, "docker"},
		{"1.1.8", "containerd's socket", "/run/containerd/containerd.sock", "docker"},
		{"1.1.9", "docker.socket", socket, "docker"},
		{"1.1.10", "dockerd's defaults", "/etc/default/docker", "docker"},
		{"1.1.11", "daemon.json", daemonJSON, "docker"},
		{"1.1.12", "containerd's configuration", "/etc/containerd/config.toml", "docker"},
		{"1.1.13", "dockerd's sysconfig", "/etc/sysconfig/docker", "docker"},
		{"1.1.14", "containerd", bin("containerd"), "docker"},
		{"1.1.15", "containerd-shim", bin("containerd-shim"), "docker"},
		{"1.1.16", "containerd-shim-runc-v1", bin("containerd-shim-runc-v1"), "docker"},
		{"1.1.17", "containerd-shim-runc-v2", bin("containerd-shim-runc-v2"), "docker"},
		{"1.1.18", "runc", bin("runc"), "docker"},
	}
	for _, f := range a.cfg.OwnFiles {
		ts = append(ts, auditdTarget{"", f.What, f.Path, "dtls"})
	}
	return ts
}

// auditdWatch is one watch rule: a path and its permissions.
type auditdWatch struct {
	path  string
	perms string
}

// covers reports whether the watch sees writes and attribute changes of
// path: the same path, or a directory above it (a directory watch is
// recursive, auditctl(8) -w).
func (w auditdWatch) covers(path string) bool {
	return strings.Contains(w.perms, "w") && strings.Contains(w.perms, "a") &&
		(w.path == path || within(path, w.path))
}

// parseAuditdRule reads one rule line in auditctl's syntax: a watch, "-w
// PATH -p PERMS [-k KEY]", or a syscall rule on a path, "-a always,exit
// -F path=PATH (or dir=PATH) -F perm=PERMS [-k KEY]" (how auditctl -l
// prints a watch of a directory). ok is false for other rules, blank
// lines and comments; err says what is wrong with a watch that does not
// parse. A watch without -p watches everything (rwxa).
func parseAuditdRule(line string) (w auditdWatch, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return w, false, nil
	}
	watch := f[0] == "-w"
	for i := 0; i < len(f); i++ {
		if i+1 >= len(f) {
			if watch {
				return w, false, fmt.Errorf("rule %q: %s has no value", line, f[i])
			}
			break
		}
		switch v := f[i+1]; f[i] {
		case "-w":
			w.path = v
		case "-p":
			w.perms = v
		case "-F":
			if p, found := strings.CutPrefix(v, "path="); found {
				w.path = p
			} else if p, found := strings.CutPrefix(v, "dir="); found {
				w.path = p
			} else if p, found := strings.CutPrefix(v, "perm="); found {
				w.perms = p
			}
		}
		i++
	}
	if watch {
		if !strings.HasPrefix(w.path, "/") {
			return w, false, fmt.Errorf("rule %q: the watched path must be absolute", line)
		}
		if w.perms == "" {
			w.perms = "rwxa"
		}
		if strings.Trim(w.perms, "rwxa") != "" {
			return w, false, fmt.Errorf("rule %q: permissions %q are not among r, w, x, a", line, w.perms)
		}
	}
	return w, w.path != "" && w.perms != "", nil
}

// loadedAuditdRules lists the rules in force: the kernel's (auditctl -l)
// when cfg.Auditctl is set and answers, else those of the rules
// directory's *.rules files (what augenrules loads at boot). from says
// which.
func (a *auditor) loadedAuditdRules() (ws []auditdWatch, from string, err error) {
	if a.cfg.Auditctl != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, a.cfg.Auditctl, "-l").Output()
		if err == nil {
			return parseAuditdRules(string(out)), "the rules loaded in the kernel (auditctl -l)", nil
		}
	}
	dir := a.cfg.AuditdRulesDir
	files, err := filepath.Glob(filepath.Join(dir, "*.rules"))
	if err == nil && len(files) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, "", err
		}
	}
	sort.Strings(files)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, "", err
		}
		ws = append(ws, parseAuditdRules(string(b))...)
	}
	return ws, "the rules of " + filepath.Join(dir, "*.rules"), nil
}

// parseAuditdRules keeps the watches of a rules text.
func parseAuditdRules(text string) []auditdWatch {
	var ws []auditdWatch
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if w, ok, err := parseAuditdRule(sc.Text()); ok && err == nil {
			ws = append(ws, w)
		}
	}
	return ws
}

// checkAuditd checks that auditd watches each target that exists on this
// host (CIS 1.1.3 to 1.1.18, dtls's own files). A host without auditd's
// rules is one WARN, not one per file.
func (a *auditor) checkAuditd(d *daemonConf) {
	if a.cfg.AuditdRulesDir == "" && a.cfg.Auditctl == "" {
		return
	}
	fix := fmt.Sprintf("sudo dtls audit --write-auditd-rules %s && sudo augenrules --load", DefaultAuditdRulesDir)
	ws, from, err := a.loadedAuditdRules()
	if err != nil {
		a.add(Finding{ID: "auditd-rules", CIS: "1.1.3", Status: Warn,
			Title:  "auditd rules not found: changes to dockerd, its configuration and dtls's files leave no trace in the host's audit log",
			Detail: why(a.cfg.AuditdRulesDir, err) + " and auditctl -l did not answer (auditd not installed, or not root)",
			Fix:    "apt-get install auditd (or dnf install audit); " + fix})
		return
	}
	var absent []string
	for _, t := range a.auditdTargets(d) {
		if _, err := os.Lstat(t.path); errors.Is(err, fs.ErrNotExist) {
			absent = append(absent, cisOr(t.cis, t.path))
			continue
		}
		id := "auditd-" + strings.ReplaceAll(cisOr(t.cis, t.key), ".", "-")
		if t.cis == "" {
			id = "auditd-dtls-" + filepath.Base(t.path)
		}
		if watched(ws, t.path) {
			a.add(Finding{ID: id, CIS: t.cis, Status: Pass, Title: fmt.Sprintf("auditd watches %s %s (-p wa)", t.what, t.path)})
			continue
		}
		a.add(Finding{ID: id, CIS: t.cis, Status: Warn,
			Title:  fmt.Sprintf("auditd does not watch %s %s", t.what, t.path),
			Detail: fmt.Sprintf("no watch with -p wa on it or a directory above it in %s", from),
			Fix:    fix})
	}
	if len(absent) > 0 {
		a.add(Finding{ID: "auditd-absent", Status: Pass, Title: "not on this host, nothing to watch: " + strings.Join(absent, ", ")})
	}
}

func cisOr(cis, other string) string {
	if cis != "" {
		return cis
	}
	return other
}

func watched(ws []auditdWatch, path string) bool {
	for _, w := range ws {
		if w.covers(path) {
			return true
		}
	}
	return false
}

// AuditdRules is the rules file for this host: one watch per target that
// exists (auditctl refuses a watch whose directory is missing), in the CIS
// format "-w PATH -p wa -k KEY", each with its CIS id in a comment line.
func AuditdRules(cfg Config) string {
	a := &auditor{cfg: cfg}
	d := &daemonConf{path: cfg.DaemonJSON}
	a.readDaemonJSONQuiet(d)
	var b strings.Builder
	b.WriteString("# auditd rules for the Docker host: CIS Docker Benchmark v1.6.0 1.1.3 to 1.1.18,\n")
	b.WriteString("# and dtls's own state, certificates and policy. Written by dtls audit\n")
	b.WriteString("# --write-auditd-rules; load with: augenrules --load\n")
	for _, t := range a.auditdTargets(d) {
		what := t.what
		if t.cis != "" {
			what = t.cis + " " + what
		}
		if _, err := os.Lstat(t.path); err != nil {
			fmt.Fprintf(&b, "# %s: %s is not on this host\n", what, t.path)
			continue
		}
		fmt.Fprintf(&b, "# %s\n-w %s -p wa -k %s\n", what, t.path, t.key)
	}
	return b.String()
}

// readDaemonJSONQuiet reads daemon.json and the unit for their paths
// (data-root, docker.service), without findings.
func (a *auditor) readDaemonJSONQuiet(d *daemonConf) {
	saved := a.findings
	a.readDaemonJSON(d)
	a.readUnit(d)
	a.findings = saved
}

// WriteAuditdRules writes AuditdRules(cfg) to dir/AuditdRulesFile (0640,
// atomically) after checking that each of its rules parses, and returns
// the file's path. It loads nothing into the kernel.
func WriteAuditdRules(dir string, cfg Config) (string, error) {
	rules := AuditdRules(cfg)
	for _, line := range strings.Split(rules, "\n") {
		if _, _, err := parseAuditdRule(line); err != nil {
			return "", fmt.Errorf("auditd rules: %w", err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("auditd rules directory %q: %w", dir, unwrapPathErr(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("auditd rules directory %q: not a directory", dir)
	}
	path := filepath.Join(dir, AuditdRulesFile)
	if err := atomicfile.Write(path, []byte(rules), 0o640); err != nil {
		return "", err
	}
	return path, nil
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
