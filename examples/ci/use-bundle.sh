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

umask 077
if [[ -n "${DTLS_HOME:-}" ]]; then
	: # the caller's store (the workflow sets it to the runner's temp dir)
elif [[ -n "${GITHUB_ENV:-}" ]]; then
	# Later steps read DOCKER_CERT_PATH from $GITHUB_ENV: the store must
	# outlive this step, so it is not removed on exit. The runner's temp
	# dir is emptied at the end of the job.
	DTLS_HOME=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/dtls.XXXXXX")
	export DTLS_HOME
else
	store=$(mktemp -d)
	trap 'rm -rf "$store"' EXIT
	export DTLS_HOME=$store/dtls
fi
printf '%s' "$DTLS_BUNDLE_B64" | base64 -d | dtls import - --name ci

if [[ -n "${GITHUB_ENV:-}" ]]; then
	# Later steps see DOCKER_HOST & co.
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
