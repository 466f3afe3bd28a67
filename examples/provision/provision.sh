#!/usr/bin/env bash
# Provision a Docker host for mutual TLS with dtls, then issue the first
# client bundle as one file to hand over.
#
#   sudo ./provision.sh docker.example.com alice
#
# Run as root on the server. Idempotent: a second run keeps the CA.
set -euo pipefail

host=${1:?usage: provision.sh PUBLIC-NAME [CLIENT]}
client=${2:-admin}
port=${DTLS_PORT:-2376}

if ! command -v dockerd >/dev/null 2>&1; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io
fi
if ! command -v dtls >/dev/null 2>&1; then
	# Or: download a release binary; go install needs Go 1.26.
	GOBIN=/usr/local/bin go install github.com/dtls-tool/dtls/cmd/dtls@latest
fi

# CA, server certificate for the public name (plus every local address),
# daemon.json merged, systemd drop-in when needed, dockerd restarted.
dtls init --host "$host" --listen "tcp://0.0.0.0:$port" --restart

# The first client bundle, as one 0600 file.
umask 077
dtls issue-client "$client" --docker-host "tcp://$host:$port" \
	--out "/root/dtls-$client" --archive "/root/dtls-$client.tar.gz" --force
dtls audit || true
echo "hand /root/dtls-$client.tar.gz to $client; on their machine: dtls import dtls-$client.tar.gz" >&2
