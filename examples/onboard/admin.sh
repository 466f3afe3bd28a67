#!/usr/bin/env bash
# On the Docker host, as root: one archive per developer.
#
#   sudo ./admin.sh alice [tcp://docker.example.com:2376]
#
# prints the archive's path; send it over a channel you trust (it holds the
# private key), e.g. scp, or a password manager's file share.
set -euo pipefail
name=${1:?usage: admin.sh NAME [DOCKER_HOST]}
out=${DTLS_OUT_DIR:-.}
args=()
[[ -n "${2:-}" ]] && args+=(--docker-host "$2")
umask 077
dtls issue-client "$name" "${args[@]}" --out "$out/dtls-$name" --archive "$out/dtls-$name.tar.gz" --force
echo "$out/dtls-$name.tar.gz"
