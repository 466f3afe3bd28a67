#!/usr/bin/env bash
# scripts/scratch.sh CMD...: runs CMD with $TMPDIR on a tmpfs of its own,
# mounted in a private mount namespace (unshare(1), mount_namespaces(7)):
# the tests' directories, daemons' data roots and servers' clusters then
# live in memory, and the tmpfs, with whatever a killed test left mounted
# in it, goes when the last process of the run exits. Nothing of it is
# visible on the host but one empty directory, removed at the end.
#
# Why: on this machine's disk, a test's fsync and ext4's bookkeeping of
# the many files tests make and delete cost as much CPU as the tests
# themselves (the crash tests: 54 CPU-seconds on /tmp, 33 on a tmpfs). A
# kill -9, which is what the crash tests inflict, keeps the page cache on
# either; what the tests check does not depend on the disk.
#
# As root only (mounting needs CAP_SYS_ADMIN); otherwise, or with
# DTLS_TEST_ON_DISK=1, or where unshare cannot make the namespace, CMD
# runs as it is.
set -euo pipefail
if [[ $(id -u) -ne 0 || -n ${DTLS_TEST_ON_DISK:-} ]] || ! unshare --mount --propagation private true 2>/dev/null; then
	exec "$@"
fi
# Short, as sandbox.ScratchRoot wants: daemons' socket paths grow from it.
dir=$(mktemp -d /tmp/dtls-t.XXXXXX)
trap 'rmdir "$dir" 2>/dev/null || true' EXIT
status=0
# A mount refused even so: say it, and run on disk.
unshare --mount --propagation private -- sh -c 'mount -t tmpfs -o mode=1777 dtls-test "$0" && TMPDIR="$0" exec "$@"
echo "scratch.sh: no tmpfs on $0: the tests run on disk" >&2; exec "$@"' "$dir" "$@" || status=$?
exit $status
