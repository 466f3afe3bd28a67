#!/usr/bin/env bash
# Installs what dtls's tests, demo and benchmarks need on a fresh Debian
# machine: dockerd (Debian's docker.io, with containerd and runc) for the
# end-to-end tests, the shells whose quoting clientenv tests, openssl,
# setfacl (acl) for the audit's socket ACL test, setpriv (util-linux) to
# run tests as an unprivileged user, and for benchmarks mkcert. Installing needs root; without it, say what is
# missing and stop.
set -euo pipefail

want=(docker.io:dockerd zsh:zsh fish:fish tcsh:tcsh openssl:openssl acl:setfacl util-linux:setpriv)
if [[ "${1:-}" == "--bench" ]]; then
	want+=(mkcert:mkcert)
fi

missing=()
for pair in "${want[@]}"; do
	pkg=${pair%%:*} bin=${pair#*:}
	if ! command -v "$bin" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$bin" ]]; then
		missing+=("$pkg")
	fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
	# Outside CI the tests that need them skip; in CI they fail loudly.
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# docker.io's post-install script would start the host's dockerd where
# systemd or sysv-init runs; the tests never use it, so keep it stopped
# when no policy says otherwise.
policy=/usr/sbin/policy-rc.d
added_policy=
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	added_policy=1
fi
trap '[[ -n "$added_policy" ]] && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
