#!/usr/bin/env bash
# Provision a Docker host for mutual TLS with dtls, then issue the first
# client bundle as one file to hand over.
#
#   sudo ./provision.sh docker.example.com alice
#
# Run as root on the server. Idempotent: a second run keeps the CA.
# dtls's DTLS_* variables move its paths (the test of this example points
# them at a temporary directory); DTLS_OUT_DIR moves the bundle (/root).
set -euo pipefail

host=${1:?usage: provision.sh PUBLIC-NAME [CLIENT]}
client=${2:-admin}
port=${DTLS_PORT:-2376}
out=${DTLS_OUT_DIR:-/root}

if ! command -v dockerd >/dev/null 2>&1; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io
fi
if ! command -v dtls >/dev/null 2>&1; then
	# Or: download a release binary; go install needs Go 1.26.
	GOBIN=/usr/local/bin go install github.com/dtls-tool/dtls/cmd/dtls@latest
fi

# CA, server certificate for the public name and local use (--host
# replaces the default list of names), daemon.json merged, systemd drop-in
# when docker.service passes -H, dockerd restarted.
dtls init --host "$host" --host localhost --host 127.0.0.1 --listen "tcp://0.0.0.0:$port" --restart

# The first client bundle, as one 0600 file.
umask 077
dtls issue-client "$client" --docker-host "tcp://$host:$port" \
	--out "$out/dtls-$client" --archive "$out/dtls-$client.tar.gz" --force
# Where the host stands (exit code 3 on a FAIL, reported, not fatal here).
dtls audit --host "$host" || true
echo "hand $out/dtls-$client.tar.gz to $client; on their machine: dtls import dtls-$client.tar.gz" >&2
