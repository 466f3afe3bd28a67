package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

const (
	maintainer = "dtls maintainers <maintainers@dtls-tool.invalid>"
	homepage   = "https://github.com/dtls-tool/dtls"
	summary    = "mutual TLS for remote access to Docker's daemon, with a CA and roles"
)

// linuxPackages makes the .deb and the .rpm of arch from its binary.
func (r *release) linuxPackages(arch string, d *docFiles) error {
	bin := filepath.Join(r.out, binaryName("linux/"+arch))
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("package %s: build linux/%s too: %w", arch, arch, err)
	}
	scripts, err := r.writeScripts()
	if err != nil {
		return err
	}
	for _, format := range []string{"deb", "rpm"} {
		info := r.packageInfo(arch, format, bin, d, scripts)
		p, err := nfpm.Get(format)
		if err != nil {
			return err
		}
		info = nfpm.WithDefaults(info)
		if err := nfpm.PrepareForPackager(info, format); err != nil {
			return fmt.Errorf("%s %s: %w", format, arch, err)
		}
		var b bytes.Buffer
		if err := p.Package(info, &b); err != nil {
			return fmt.Errorf("%s %s: %w", format, arch, err)
		}
		if err := os.WriteFile(filepath.Join(r.out, p.ConventionalFileName(info)), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// packageInfo is what nfpm packs for format on arch.
func (r *release) packageInfo(arch, format, bin string, d *docFiles, s scriptFiles) *nfpm.Info {
	info := &nfpm.Info{
		Name: "dtls", Arch: arch, Platform: "linux", Version: r.pkgVersion, Release: "1",
		VersionSchema: "none", Section: "admin", Priority: "optional", Maintainer: maintainer,
		Description: summary + "\n" + description, Vendor: "dtls", Homepage: homepage,
		License: "unspecified", MTime: r.mtime,
		Overridables: nfpm.Overridables{
			Contents: r.contents(format, bin, d),
			Scripts:  nfpm.Scripts{PostInstall: s.postinst, PreRemove: s.prerm, PostRemove: s.postrm},
			Umask:    0o022,
			// gzip, as the rpm: dpkg reads it on every Debian and
			// Ubuntu (as it does xz; zstd only from dpkg 1.21.18), and
			// nfpm's xz (github.com/ulikunitz/xz) took 8 to 9
			// CPU-seconds a package here where gzip takes under one,
			// for 8% more bytes (9.1 MB instead of 8.4).
			Deb: nfpm.Deb{Compression: "gzip"},
			RPM: nfpm.RPM{Summary: summary, Group: "Applications/System", BuildHost: "dtls-release",
				Packager: maintainer, Compression: "gzip"},
		},
	}
	if format == "rpm" {
		// rpm keeps the synopsis in Summary, and the text unindented.
		info.Description = strings.ReplaceAll(strings.TrimPrefix(description, " "), "\n ", "\n")
	}
	return info
}

// description is the deb's extended description (Debian policy 5.6.13:
// each line indented by a space).
const description = ` dtls secures remote access to Docker's daemon with mutual TLS: a CA,
 server and client certificates, roles enforced by a Docker authorization
 plugin or a gateway, and an online CA that renews certificates for a
 fleet. The systemd units are installed but not enabled.`

// contents are the package's files with their modes, owned by root, with
// the commit's time.
func (r *release) contents(format, bin string, d *docFiles) files.Contents {
	var cs files.Contents
	add := func(src, dst string, mode os.FileMode) {
		cs = append(cs, &files.Content{Source: src, Destination: dst, Type: files.TypeFile,
			FileInfo: &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: r.mtime}})
	}
	add(bin, "/usr/bin/dtls", 0o755)
	for _, m := range d.manGz {
		add(filepath.Join(d.dir, m), "/usr/share/man/man1/"+filepath.Base(m), 0o644)
	}
	add(filepath.Join(d.dir, "completion/dtls.bash"), "/usr/share/bash-completion/completions/dtls", 0o644)
	add(filepath.Join(d.dir, "completion/dtls.zsh"), "/usr/share/zsh/vendor-completions/_dtls", 0o644)
	add(filepath.Join(d.dir, "completion/dtls.fish"), "/usr/share/fish/vendor_completions.d/dtls.fish", 0o644)
	for _, u := range d.systemUnits {
		add(filepath.Join(d.dir, u), "/usr/lib/systemd/system/"+filepath.Base(u), 0o644)
	}
	for _, u := range d.userUnits {
		add(filepath.Join(d.dir, u), "/usr/lib/systemd/user/"+filepath.Base(u), 0o644)
	}
	add(filepath.Join(d.dir, "sysusers.conf"), "/usr/lib/sysusers.d/dtls.conf", 0o644)
	add(filepath.Join(d.dir, "copyright"), "/usr/share/doc/dtls/copyright", 0o644)
	if format == "deb" {
		add(filepath.Join(d.dir, "changelog.Debian.gz"), "/usr/share/doc/dtls/changelog.Debian.gz", 0o644)
		add(filepath.Join(d.dir, "lintian-overrides"), "/usr/share/lintian/overrides/dtls", 0o644)
	}
	return cs
}

// scriptFiles are the maintainer scripts' paths.
type scriptFiles struct{ postinst, prerm, postrm string }

// writeScripts writes the maintainer scripts and the package's other
// generated files (copyright, changelog, sysusers.d entry) into r.work.
func (r *release) writeScripts() (scriptFiles, error) {
	s := scriptFiles{filepath.Join(r.work, "postinst"), filepath.Join(r.work, "prerm"), filepath.Join(r.work, "postrm")}
	changelog := fmt.Sprintf("dtls (%s-1) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n",
		r.pkgVersion, r.commit, maintainer, r.mtime.Format(time.RFC1123Z))
	for path, data := range map[string][]byte{
		s.postinst:                             []byte(postinst),
		s.prerm:                                []byte(prerm),
		s.postrm:                               []byte(postrm),
		filepath.Join(r.work, "sysusers.conf"): []byte(sysusers),
		filepath.Join(r.work, "copyright"):     []byte(fmt.Sprintf(copyright, r.mtime.Year())),
		filepath.Join(r.work, "lintian-overrides"):   []byte(lintianOverrides),
		filepath.Join(r.work, "changelog.Debian.gz"): gzipBytes([]byte(changelog), gzip.BestCompression),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return s, err
		}
	}
	return s, nil
}
