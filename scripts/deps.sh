#!/usr/bin/env bash
# Installs what dtls's tests, demo and benchmarks need on a fresh Debian
# machine: dockerd (Debian's docker.io, with containerd and runc) for the
# end-to-end tests, the shells whose quoting clientenv tests, openssl,
# setfacl (acl) for the audit's socket ACL test, docker-compose (v1, on
# python3-docker) for the gateway's clients' tests, sshd and ssh (openssh-server,
# openssh-client) for the gateway's ssh test, setpriv (util-linux) to
# run tests as an unprivileged user, ip (iproute2) to remove the bridges of
# the networks a test daemon made, PostgreSQL's initdb, pg_ctl and
# postgres (postgresql) for the store's tests on PostgreSQL
# (internal/pgsandbox starts a throw-away server), systemd-analyze
# (systemd) to verify the units as systemd would load them, for make
# dist-check lintian and rpm (rpm -qlp and a scratch rpm database), and
# for benchmarks mkcert. Installing needs root; without it, say what is
# missing and stop.
set -euo pipefail

want=(docker.io:dockerd zsh:zsh fish:fish tcsh:tcsh openssl:openssl acl:setfacl util-linux:setpriv iproute2:ip
	lintian:lintian rpm:rpm systemd:systemd-analyze docker-compose:docker-compose openssh-server:sshd openssh-client:ssh)
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
# docker-py, for the test that shows what REQUESTS_CA_BUNDLE does to it
# (daemoncheck); a module, not a binary.
if ! /usr/bin/python3 -c 'import docker' >/dev/null 2>&1; then
	missing+=(python3-docker)
fi
# Debian's postgresql-NN puts initdb, pg_ctl and postgres in
# /usr/lib/postgresql/NN/bin, outside PATH; internal/pgsandbox looks in
# PATH, then there.
have_postgres() {
	local dir
	for dir in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")" /usr/lib/postgresql/*/bin; do
		[[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] && return 0
	done
	return 1
}
have_postgres || missing+=(postgresql)
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
# systemd or sysv-init runs, and postgresql-NN's the cluster "main" it
# creates (postgresql-common's configure_version: pg_createcluster, then
# 'invoke-rc.d postgresql start'); the tests use neither, so keep them
# stopped when no policy says otherwise: invoke-rc.d starts nothing when
# policy-rc.d exits 101 (/usr/share/doc/init-system-helpers/README.policy-rc.d.gz).
policy=/usr/sbin/policy-rc.d
added_policy=
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	added_policy=1
fi
trap '[[ -n "$added_policy" ]] && rm -f "$policy"' EXIT
clusters_before=$(ls -d /etc/postgresql/*/* 2>/dev/null || true)
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A cluster the install just made would still start at the next boot
# under systemd (postgresql@NN-main, start.conf "auto"): make it manual.
for conf in /etc/postgresql/*/*/start.conf; do
	[[ -e $conf ]] || continue
	if ! grep -qxF "$(dirname "$conf")" <<<"$clusters_before"; then
		echo "deps: PostgreSQL cluster $(dirname "$conf") not started at boot (start.conf manual)" >&2
		echo manual >"$conf"
	fi
done
