package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// allTargets are the platforms of a release: the laptop's commands run on
// macOS and Windows too.
var allTargets = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}

const pkgPath = "github.com/dtls-tool/dtls"

// release is one run: what it builds, from which commit, and where.
type release struct {
	out, work string
	targets   []string
	packages  []string
	// version is what 'dtls version' prints (git describe); pkgVersion
	// the packages' version, which must start with a digit.
	version, pkgVersion string
	commit              string
	// mtime is the commit's time: the version date and every file's
	// time in packages and archives.
	mtime time.Time
}

func newRelease(out string, targets, packages []string) (*release, error) {
	for _, t := range targets {
		if !slices.Contains(allTargets, t) {
			return nil, fmt.Errorf("target %q: want one of %s", t, strings.Join(allTargets, ", "))
		}
	}
	for _, a := range packages {
		if a != "amd64" && a != "arm64" {
			return nil, fmt.Errorf("package architecture %q: want amd64 or arm64", a)
		}
	}
	r := &release{out: out, targets: targets, packages: packages}
	var err error
	if r.version, err = git("describe", "--tags", "--always", "--dirty"); err != nil {
		return nil, err
	}
	if r.commit, err = git("rev-parse", "HEAD"); err != nil {
		return nil, err
	}
	date, err := git("log", "-1", "--format=%cI")
	if err != nil {
		return nil, err
	}
	if r.mtime, err = time.Parse(time.RFC3339, date); err != nil {
		return nil, fmt.Errorf("commit time %q: %w", date, err)
	}
	r.mtime = r.mtime.UTC()
	r.pkgVersion = packageVersion(r.version, r.commit, r.mtime)
	if r.work, err = os.MkdirTemp("", "dtls-release-"); err != nil {
		return nil, err
	}
	return r, nil
}

// packageVersion is 1.2.3 for the tag v1.2.3, else a version below any
// release that sorts by commit time: 0.0.0~git20261207053000.e259215
// (the "~" sorts before anything in dpkg and rpm alike).
func packageVersion(described, commit string, t time.Time) string {
	v := strings.TrimSuffix(described, "-dirty")
	if len(v) > 1 && v[0] == 'v' && !strings.Contains(v, "-g") && strings.Count(v, ".") == 2 {
		return v[1:]
	}
	return "0.0.0~git" + t.Format("20060102150405") + "." + commit[:7]
}

func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// build makes every release file in r.out (emptied first) and returns
// their names.
func (r *release) build() ([]string, error) {
	if err := os.RemoveAll(r.out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return nil, err
	}
	docs, err := r.docs()
	if err != nil {
		return nil, err
	}
	for _, t := range r.targets {
		if err := r.buildTarget(t, docs); err != nil {
			return nil, err
		}
	}
	for _, arch := range r.packages {
		if err := r.linuxPackages(arch, docs); err != nil {
			return nil, err
		}
	}
	return writeSums(r.out)
}

// binaryName is the released binary of target, e.g. dtls-linux-amd64.
func binaryName(target string) string {
	name := "dtls-" + strings.ReplaceAll(target, "/", "-")
	if strings.HasPrefix(target, "windows/") {
		name += ".exe"
	}
	return name
}

// buildTarget builds the binary of target, its SBOM, and its archive on
// macOS and Windows.
func (r *release) buildTarget(target string, d *docFiles) error {
	bin := filepath.Join(r.out, binaryName(target))
	if err := r.goBuild(target, bin); err != nil {
		return err
	}
	if err := writeSBOM(bin, r.version, r.commit, r.mtime); err != nil {
		return err
	}
	goos, arch, _ := strings.Cut(target, "/")
	base := fmt.Sprintf("dtls_%s_%s_%s", r.pkgVersion, goos, arch)
	switch goos {
	case "darwin":
		return writeTarGz(filepath.Join(r.out, base+".tar.gz"), r.archiveEntries(bin, "dtls", d), r.mtime)
	case "windows":
		return writeZip(filepath.Join(r.out, base+".zip"), r.archiveEntries(bin, "dtls.exe", d), r.mtime)
	}
	return nil
}

// goBuild builds ./cmd/dtls for target, statically and reproducibly.
func (r *release) goBuild(target, bin string) error {
	goos, arch, _ := strings.Cut(target, "/")
	ldflags := strings.Join([]string{"-s", "-w", "-buildid=",
		"-X", pkgPath + "/cmd.version=" + r.version,
		"-X", pkgPath + "/cmd.commit=" + r.commit,
		"-X", pkgPath + "/cmd.date=" + r.mtime.Format(time.RFC3339)}, " ")
	// -buildvcs=false: Go stamps the commit in a clone but not in every
	// checkout (a linked worktree gets none), so the same commit would
	// give two binaries; the -X flags carry the version, commit and date.
	c := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", bin, "./cmd/dtls")
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+arch, "GOFLAGS=")
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("build %s: %w", target, err)
	}
	return nil
}

// writeSums writes SHA256SUMS for every file of dir, in name order, in
// sha256sum's format, and returns the names.
func writeSums(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	var names []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%x  %s\n", sha256.Sum256(data), e.Name())
		names = append(names, e.Name())
	}
	names = append(names, "SHA256SUMS")
	return names, os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}
