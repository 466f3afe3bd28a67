#!/usr/bin/env bash
# The whole flow on a sandboxed dockerd, as an admin and a developer would
# type it, with every path under one temporary directory: nothing touches
# /etc/docker, systemd or the host's Docker socket.
set -euo pipefail
cd "$(dirname "$0")/.."
dtls=$PWD/bin/dtls
docker=$(command -v docker)
dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
[[ $(id -u) -eq 0 ]] || { echo "demo: dockerd needs root: sudo make demo" >&2; exit 1; }
[[ -x $dockerd ]] || { echo "demo: dockerd not found: apt-get install -y docker.io" >&2; exit 1; }

# Short path: unix socket paths are limited to 108 bytes.
sb=$(mktemp -d /tmp/dtls-demo.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 23760)
pid=
# dockerd 20.10 makes /run/docker/plugins whatever its configuration (moby
# pkg/plugins/discovery_unix.go): the host stays as the demo found it.
made_dirs=()
for d in /run/docker/plugins /run/docker; do [[ -e $d ]] || made_dirs+=("$d"); done
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	# dockerd 20.10 can leave its network namespace mounted in the
	# exec-root (EXEC_ROOT/netns/default): detach what is below the sandbox.
	awk -v sb="$sb/" 'index($5, sb) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" || true; done
	rm -rf "$sb"
	for d in "${made_dirs[@]}"; do rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT

run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# A daemon.json that keeps the sandboxed daemon off the host's paths
# (dockerd before 25 writes /etc/docker/key.json unless deprecated-key-path
# says otherwise; 25 and later write no key.json).
keypath=
major=$("$dockerd" --version | sed -nE 's/^Docker version ([0-9]+)\..*/\1/p')
if [[ -n $major && $major -lt 25 ]]; then
	keypath=$'\n  "deprecated-key-path": "'"$sb"'/key.json",'
fi
cat >"$sb/daemon.json" <<JSON
{
  "hosts": ["unix://$sb/docker.sock"],
  "data-root": "$sb/data",
  "exec-root": "$sb/exec",
  "pidfile": "$sb/docker.pid",$keypath
  "iptables": false,
  "bridge": "none",
  "storage-driver": "vfs"
}
JSON
mkdir -p "$sb/systemd"
export DTLS_STATE_DIR=$sb/state DTLS_CERTS_DIR=$sb/certs DTLS_DAEMON_JSON=$sb/daemon.json DTLS_SYSTEMD_DIR=$sb/systemd

echo "== on the server"
run "$dtls" init --listen "tcp://127.0.0.1:$port" --host localhost --host 127.0.0.1
run cat "$sb/daemon.json"
run ls -l "$sb/certs" "$sb/state"

"$dockerd" --config-file "$sb/daemon.json" >"$sb/dockerd.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
	[[ -S $sb/docker.sock ]] && grep -q "API listen on 127.0.0.1:$port" "$sb/dockerd.log" && break
	kill -0 "$pid" 2>/dev/null || { cat "$sb/dockerd.log" >&2; exit 1; }
	sleep 0.1
done
echo "dockerd (pid $pid) listens on tcp://127.0.0.1:$port with tlsverify"

run "$dtls" issue-client alice --out "$sb/alice"

echo
echo "== on alice's machine"
run "$dtls" env --cert-path "$sb/alice"
eval "$("$dtls" env --cert-path "$sb/alice")"
run "$docker" version --format 'client {{.Client.Version}} -> server {{.Server.Version}} over {{.Server.Os}}/{{.Server.Arch}}'

echo
echo "== without a client certificate the daemon refuses"
if DOCKER_CERT_PATH=$sb/nocert "$docker" --tlsverify --tlscacert "$sb/alice/ca.pem" version 2>&1 | tail -1; then :; fi
echo
echo "demo ok"
