#!/usr/bin/env bash
# A CI job that talks to a remote dockerd with its own client bundle.
#
# The bundle archive ('dtls issue-client ci-runner --archive ci.tar.gz',
# short-lived: --days 30) is stored as a secret, base64-encoded:
#   base64 -w0 ci.tar.gz   ->  secret DTLS_BUNDLE_B64
# The job decodes it into a private temporary store, and writes the
# variables in KEY=value form to the file the CI system reads ($GITHUB_ENV
# on GitHub Actions, a dotenv report on GitLab), or runs a command with them.
#
#   DTLS_BUNDLE_B64=... ./use-bundle.sh docker version
set -euo pipefail
: "${DTLS_BUNDLE_B64:?set the DTLS_BUNDLE_B64 secret}"

store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
export DTLS_HOME=$store/dtls
umask 077
printf '%s' "$DTLS_BUNDLE_B64" | base64 -d | dtls import - --name ci

if [[ -n "${GITHUB_ENV:-}" ]]; then
	# Later steps see DOCKER_HOST & co. The store must outlive this step
	# there: keep it in the runner's temp dir instead of $store.
	dtls env ci --format dotenv >>"$GITHUB_ENV"
fi
if [[ $# -gt 0 ]]; then
	# This step: export the same variables and run the command. The
	# dotenv values are literal (not shell-quoted): read, do not source.
	while IFS='=' read -r key value; do
		export "$key=$value"
	done < <(dtls env ci --format dotenv)
	"$@"
fi
