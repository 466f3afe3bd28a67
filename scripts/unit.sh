#!/usr/bin/env bash
# scripts/unit.sh [BUILD FLAGS...]: what 'go test -count=1 ./...' does, in
# two steps: every package's test binary is built first ('go test -c', with
# BUILD FLAGS), then each runs in its package's directory, as many at once
# as there are CPUs (go test's -p), with go test's flags
# (-test.paniconexit0, -test.timeout) and environment (PWD, $GOROOT/bin
# first in PATH: cmd/go/internal/test, runTestActor). A package that passes
# prints go test's "ok" line, one that fails its whole output and a "FAIL"
# line; the script fails if any package does.
#
# Why: go test links every test binary again at each run, while go test -c
# takes a binary from the build cache when nothing in it changed. Here that
# was 19 CPU-seconds of linking for the 33 test binaries at every run,
# against under one.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout=${UNIT_TIMEOUT:-30m}
bins=$(mktemp -d "${TMPDIR:-/tmp}/dtls-unit.XXXXXX")
trap 'rm -rf "$bins"' EXIT

# go test -c names each binary after the last element of the package's
# path: the script refuses two packages that share it rather than run one
# package's binary for another.
pkgs=$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' ./... | grep .)
dups=$(awk '{n = split($1, p, "/"); print p[n]}' <<<"$pkgs" | sort | uniq -d)
[[ -z $dups ]] || { echo "unit.sh: packages share a last path element: $dups" >&2; exit 2; }
go test -c -o "$bins/" "$@" ./... | { grep -v '\[no test files\]$' || true; }

export UNIT_BINS=$bins UNIT_TIMEOUT=$timeout
export PATH="$(go env GOROOT)/bin:$PATH"
run() {
	local pkg=$1 dir=$2 out start rc=0 ms took
	out=$(mktemp "$UNIT_BINS/out.XXXXXX")
	start=$(date +%s%N)
	(cd "$dir" && PWD=$dir exec "$UNIT_BINS/${pkg##*/}.test" -test.paniconexit0 -test.timeout="$UNIT_TIMEOUT" </dev/null >"$out" 2>&1) || rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	took=$(printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)))
	# One package's report at a time, whole.
	exec {lock}>>"$UNIT_BINS/lock"
	flock "$lock"
	if ((rc == 0)); then
		printf 'ok  \t%s\t%s\n' "$pkg" "$took"
	else
		cat "$out"
		printf 'FAIL\t%s\t%s\n' "$pkg" "$took"
	fi
	flock -u "$lock"
	return $((rc == 0 ? 0 : 1))
}
export -f run
xargs -P "$(nproc)" -L 1 bash -c 'run "$@"' _ <<<"$pkgs"
