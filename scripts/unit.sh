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
# Why: go test links every test binary again at each run (here 33 links,
# 20 to 25 CPU-seconds), while 'go test -c -o DIR/' links only the binaries
# whose inputs changed since the ones already in DIR were built: cmd/go
# compares the build ID it would give a binary with the one in the file
# there. DIR is therefore kept between runs, outside the checkout (a fresh
# clone, built with -trimpath, makes the same binaries): $DTLS_TEST_BIN_DIR,
# by default ~/.cache/dtls/test-bin (under $TMPDIR without a home); 'make
# clean' removes it. What a binary tests is decided by cmd/go as for go
# test: a changed file, flag or dependency gives another build ID and a
# new link.
#
# Several runs may share DIR (two checkouts tested at once): the build
# holds DIR/lock, and each run hard-links the binaries it runs into a
# directory of its own there, so a later build, which writes a new file in
# place of the old one, never changes a binary a run is executing.
#
# Packages start longest first, by the durations the last runs recorded
# in DIR/times (a new package counts as the longest): the longest package,
# cmd, no longer starts last behind the short ones.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout=${UNIT_TIMEOUT:-30m}
base=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
cache=${DTLS_TEST_BIN_DIR:-${base:-${TMPDIR:-/tmp}}/dtls/test-bin}
mkdir -p "$cache/bin"
run=$cache/run.$$
trap 'rm -rf "$run"' EXIT

# go test -c names each binary after the last element of the package's
# path: the script refuses two packages that share it rather than run one
# package's binary for another.
# Packages are named by import path alone, and run from their directory
# relative to the module's (no blank in either, wherever the checkout is).
pkgs=$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./... | grep .)
dups=$(awk '{n = split($1, p, "/"); print p[n]}' <<<"$pkgs" | sort | uniq -d)
[[ -z $dups ]] || { echo "unit.sh: packages share a last path element: $dups" >&2; exit 2; }

exec {lock}>>"$cache/lock"
flock "$lock"
# Run directories left by runs that were killed.
for d in "$cache"/run.*; do
	[[ -d $d ]] && ! kill -0 "${d##*.}" 2>/dev/null && rm -rf "$d"
done
go test -c -o "$cache/bin/" "$@" ./... | { grep -v '\[no test files\]$' || true; }
mkdir "$run"
while read -r pkg; do
	ln "$cache/bin/${pkg##*/}.test" "$run/" 2>/dev/null || cp "$cache/bin/${pkg##*/}.test" "$run/"
done <<<"$pkgs"
touch "$cache/times"
pkgs=$(awk 'FILENAME == ARGV[1] { ms[$1] = $2; next } { print ($1 in ms ? ms[$1] : 999999999), $0 }' "$cache/times" - <<<"$pkgs" |
	sort -k1,1nr | cut -d' ' -f2-)
flock -u "$lock"

export UNIT_RUN=$run UNIT_TIMEOUT=$timeout UNIT_MODULE=$(go list -m)
export PATH="$(go env GOROOT)/bin:$PATH"
run() {
	local pkg=$1 dir=.${1#"$UNIT_MODULE"} out start rc=0 ms took
	out=$(mktemp "$UNIT_RUN/out.XXXXXX")
	start=$(date +%s%N)
	(cd "$dir" && exec "$UNIT_RUN/${pkg##*/}.test" -test.paniconexit0 -test.timeout="$UNIT_TIMEOUT" </dev/null >"$out" 2>&1) || rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	took=$(printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)))
	echo "$pkg $ms" >>"$UNIT_RUN/times"
	# One package's report at a time, whole.
	exec {lock}>>"$UNIT_RUN/lock"
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
status=0
xargs -P "$(nproc)" -L 1 bash -c 'run "$@"' _ <<<"$pkgs" || status=$?

# This run's durations replace the recorded ones; the others stay.
flock "$lock"
awk 'FILENAME == ARGV[1] { ms[$1] = $2; next } NF == 2 && $2 ~ /^[0-9]+$/ && !($1 in ms) { print } END { for (p in ms) print p, ms[p] }' \
	"$run/times" "$cache/times" >"$cache/times.new" 2>/dev/null && mv "$cache/times.new" "$cache/times"
flock -u "$lock"
exit $status
