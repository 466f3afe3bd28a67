package main

// sysusers is the dtls user as systemd-sysusers makes it
// (sysusers.d(5)): a system user and group for the services that need no
// root (dtls-ca.service), with no shell and no home of its own.
const sysusers = `# The user of the dtls services that need no root (dtls-ca.service).
u dtls - "dtls services" /nonexistent /usr/sbin/nologin
`

// postinst makes the dtls user, for .deb ("configure") and .rpm (1 or 2)
// alike, and enables nothing. $DPKG_ROOT is set when dpkg installs into
// another root (--root with --force-script-chrootless): every path and
// tool is then taken there, never the running system's.
const postinst = `#!/bin/sh
set -e
case "$1" in
configure|1|2)
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers --root="${DPKG_ROOT:-/}" dtls.conf
	elif ! getent passwd dtls >/dev/null 2>&1 && [ -z "$DPKG_ROOT" ]; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dtls
	fi
	# The units are new or changed; none is enabled or started here.
	if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
`

// prerm stops the services an admin started before the binary goes.
const prerm = `#!/bin/sh
set -e
case "$1" in
remove|0)
	if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
		systemctl stop dtls-gateway.socket dtls-gateway.service dtls-authz.socket dtls-authz.service \
			dtls-ca.service dtls-renew.timer dtls-renew.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
`

// postrm keeps configuration and data on remove; purge (.deb only: rpm
// has no purge, an rpm -e keeps them) removes them: /etc/dtls, the
// state directories of the host CA (/var/lib/dtls) and of the online CA
// (/var/lib/dtls-ca), with their CA keys, and /var/log/dtls.
const postrm = `#!/bin/sh
set -e
case "$1" in
purge)
	rm -rf "$DPKG_ROOT/etc/dtls" "$DPKG_ROOT/var/lib/dtls" "$DPKG_ROOT/var/lib/dtls-ca" "$DPKG_ROOT/var/log/dtls"
	;;
esac
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
`

// copyright is /usr/share/doc/dtls/copyright, in Debian's machine-readable
// format (copyright-format 1.0); %d is the commit's year.
const copyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: dtls
Upstream-Contact: dtls maintainers <maintainers@dtls-tool.invalid>
Source: https://github.com/dtls-tool/dtls

Files: *
Copyright: %d the dtls authors
License: unspecified
 The dtls source repository states no license. The Go modules linked into
 /usr/bin/dtls are listed, with their versions, in the CycloneDX SBOM
 published next to the package (dtls-linux-ARCH.cdx.json).
`

// lintianOverrides explains what lintian flags in a Go release package.
const lintianOverrides = `# A Go program built with CGO_ENABLED=0 is static by design: it runs on
# any Linux of the architecture.
dtls: statically-linked-binary [usr/bin/dtls]
`
