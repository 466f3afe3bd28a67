// Command release builds dtls's release files into one directory ('make
// dist'): static binaries for Linux, macOS and Windows on amd64 and
// arm64, .deb and .rpm packages for Linux (nfpm as a library), a tar.gz
// per macOS binary and a zip per Windows binary, a CycloneDX SBOM per
// binary read from its build info, and SHA256SUMS.
//
//	go run ./internal/release [-out dist] [-targets linux/amd64,...] [-packages amd64,arm64]
//
// The output is reproducible: the same commit gives the same bytes. The
// binaries are built with -trimpath, an empty build ID and the commit's
// time as their date; every file in a package or an archive has the
// commit's time, sorted entries, and root as owner; gzip headers carry no
// time or name.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "release: error: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	out := fs.String("out", "dist", "directory for the release files (replaced)")
	targets := fs.String("targets", strings.Join(allTargets, ","), "GOOS/GOARCH pairs to build")
	packages := fs.String("packages", "amd64,arm64", "Linux architectures to make .deb and .rpm for (empty: none)")
	dirty := fs.Bool("allow-dirty", false, "build a tree with uncommitted changes (its files are not those of the commit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := checkClean(*dirty); err != nil {
		return err
	}
	r, err := newRelease(*out, split(*targets), split(*packages))
	if err != nil {
		return err
	}
	defer os.RemoveAll(r.work)
	files, err := r.build()
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Println(f)
	}
	return nil
}

// checkClean refuses a tree with uncommitted changes: a release is the
// commit's, and only the commit can be built again to the same bytes.
func checkClean(allowDirty bool) error {
	status, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil || status == "" || allowDirty {
		return err
	}
	var files []string
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			files = append(files, f[len(f)-1])
		}
	}
	return fmt.Errorf("uncommitted changes in %s: commit them, or build anyway with -allow-dirty (make dist DISTFLAGS=-allow-dirty)",
		strings.Join(files, ", "))
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
