#!/usr/bin/env bash
# make dist-check: the release files of HEAD are reproducible and the
# Linux package is sound, all in a scratch directory (never the host's
# /etc, /usr or systemd):
#   1. two checkouts of HEAD (a worktree and a clone) at two paths, in
#      two time zones and umasks, build the same release files, byte for
#      byte (binaries, .deb, .rpm, archives, SBOMs, SHA256SUMS);
#   2. lintian finds no error in the .deb;
#   3. systemd-analyze verify accepts every unit, in a scratch root that
#      holds the package and the host's own units (it checks that
#      ExecStart's binary exists, there);
#   4. dpkg installs the .deb into a scratch root (--root, maintainer
#      scripts run chrootless with $DPKG_ROOT), 'dtls version' runs from
#      it, no unit is enabled; removal keeps only /etc/dtls and
#      /var/lib/dtls, purge removes them;
#   5. the .rpm lists the same files, and installs and erases in a scratch
#      rpm database.
# DIST_CHECK_TARGETS chooses the platforms built twice, separated by
# spaces or commas (default, as the Makefile's: one of each system, Linux
# with its packages); DIST_CHECK_FRESH_CACHE=1 gives
# the second build an empty Go build cache, so that nothing it links is
# reused from the first.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=${DIST_CHECK_TARGETS:-linux/amd64 darwin/arm64 windows/amd64}
targets=${targets// /,}
work=$(mktemp -d "${TMPDIR:-/tmp}/dtls-dist-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
head=$(git rev-parse HEAD)

fail() { echo "dist-check: FAIL: $*" >&2; exit 1; }

echo "== reproducible: two builds of $head"
# One checkout is a linked worktree, the other a clone: Go's VCS stamping
# tells them apart, so a build that let it in would differ.
git worktree add -q --detach "$work/src-a" "$head"
trap 'git worktree remove --force "$work/src-a" 2>/dev/null; rm -rf "$work"' EXIT
git clone -q --shared --no-checkout . "$work/src-b"
git -C "$work/src-b" checkout -q --detach "$head"
for side in a b; do
	# The second build in another path, time zone and umask: none of
	# them may show in the files.
	env=(TZ=UTC) mask=022
	if [[ $side == b ]]; then
		env=(TZ=Pacific/Kiritimati) mask=077
		[[ ${DIST_CHECK_FRESH_CACHE:-} == 1 ]] && env+=(GOCACHE="$work/gocache")
	fi
	(cd "$work/src-$side" && umask $mask && env "${env[@]}" go run ./internal/release -out "$work/$side" -targets "$targets" -packages amd64 >/dev/null)
done
if ! diff -r "$work/a" "$work/b"; then
	fail "the two builds differ"
fi
(cd "$work/a" && sha256sum -c --quiet SHA256SUMS) || fail "SHA256SUMS does not match the files"
ls -l "$work/a" | sed 1d | awk '{printf "  %10d  %s\n", $5, $9}'
echo "identical: $(ls "$work/a" | wc -l) files"

deb=$(ls "$work"/a/*.deb)
rpm=$(ls "$work"/a/*.rpm)

echo "== lintian $(basename "$deb")"
if command -v lintian >/dev/null; then
	# lintian warns that it runs as root (CI does): not about the package.
	lintian --fail-on error --tag-display-limit 0 "$deb" 2>&1 | grep -v 'running with root privileges' || fail "lintian reports errors"
else
	[[ -z ${CI:-} ]] || fail "lintian is missing (scripts/deps.sh installs it)"
	echo "lintian missing: skipped (scripts/deps.sh installs it as root)"
fi

echo "== systemd-analyze verify"
root=$work/unitroot
mkdir -p "$root"
dpkg-deb -x "$deb" "$root"
# The units name targets and services of the system (network-online,
# docker, sockets, timers): the host's own units stand for them.
cp -an /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/" 2>/dev/null || true
# systemd-analyze cannot read user units under --root: the agent's unit
# is checked by the system manager's parser, which is the same, from a
# directory of its search path.
mkdir -p "$root/etc/systemd/system" && cp "$root/usr/lib/systemd/user/dtls-agent.service" "$root/etc/systemd/system/"
units=("$root"/usr/lib/systemd/system/dtls-* "$root/etc/systemd/system/dtls-agent.service")
out=$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1) || { echo "$out"; fail "systemd-analyze verify"; }
# An unknown or misspelt key is only a warning to systemd: fail on any.
[[ -z $out ]] || { echo "$out"; fail "systemd-analyze verify printed warnings"; }
for u in "${units[@]}"; do echo "  ok ${u#"$root"}"; done

echo "== install, remove and purge in a scratch root"
root=$work/root
mkdir -p "$root/etc" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
dpkgr() { dpkg --root="$root" --force-script-chrootless --log=/dev/null "$@"; }
dpkgr -i "$deb" >/dev/null
"$root/usr/bin/dtls" version
grep -q '^dtls:' "$root/etc/passwd" || fail "postinst made no dtls user"
enabled=$(find "$root/etc" -name '*.wants' -o -name '*.requires' | head -1)
[[ -z $enabled ]] || fail "installing enabled a unit: $enabled"
# What an admin leaves: configuration and state.
mkdir -p "$root/etc/dtls" "$root/var/lib/dtls" "$root/var/log/dtls"
echo '{}' >"$root/etc/dtls/authz-policy.json"
echo state >"$root/var/lib/dtls/ca.pem"
echo log >"$root/var/log/dtls/authz.log"
dpkgr -r dtls >/dev/null
[[ ! -e $root/usr/bin/dtls ]] || fail "remove left /usr/bin/dtls"
left=$(cd "$root" && find . -type f -not -path './var/lib/dpkg/*' -not -path './etc/*' | sort)
[[ $left == "./var/lib/dtls/ca.pem"$'\n'"./var/log/dtls/authz.log" ]] || fail "remove left files other than configuration and data: $left"
[[ -e $root/etc/dtls/authz-policy.json ]] || fail "remove deleted the configuration"
dpkgr -P dtls >/dev/null
for p in etc/dtls var/lib/dtls var/log/dtls; do
	[[ ! -e $root/$p ]] || fail "purge left /$p"
done
echo "  installed, 'dtls version' ran, removed (configuration and data kept), purged (gone)"

echo "== rpm $(basename "$rpm")"
want=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}' | grep -v -e changelog.Debian -e /lintian/ | sort)
if command -v rpm >/dev/null; then
	have=$(rpm -qlp "$rpm" 2>/dev/null | sort)
	[[ $have == "$want" ]] || { diff <(echo "$want") <(echo "$have"); fail "the rpm's files differ from the deb's"; }
	rroot=$work/rpmroot
	mkdir -p "$rroot"
	# Debian's rpm warns before every change that it is not dpkg: show
	# its output only when it fails.
	rpmq() { local out; out=$(rpm --root="$rroot" "$@" 2>&1) || { echo "$out"; fail "rpm $*"; }; }
	rpmq --initdb
	# Its scripts would run chrooted in a root with no shell: they are
	# the deb's, checked above.
	rpmq -i --nodeps --noscripts "$rpm"
	"$rroot/usr/bin/dtls" version >/dev/null
	rpmq -e --noscripts dtls
	[[ ! -e $rroot/usr/bin/dtls ]] || fail "rpm -e left /usr/bin/dtls"
	echo "  $(echo "$have" | wc -l) files, as the deb; installed and erased"
else
	[[ -z ${CI:-} ]] || fail "rpm is missing (scripts/deps.sh installs it)"
	echo "rpm missing: skipped"
fi
echo "dist-check: ok"
