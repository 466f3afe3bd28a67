#!/usr/bin/env bash
# One workspace per developer for dtls's authorization plugin: the policy's
# "bind_roots": ["/srv/work/{user}"] lets each certificate holder mount
# /srv/work/NAME (and nothing else of the host). The plugin mounts a root
# only on a file system mounted nosuid,nodev, under directories that are
# root's and writable by root alone.
#
#   sudo ./workspaces.sh alice bob
set -euo pipefail
base=${DTLS_WORK:-/srv/work}
fstab=${DTLS_FSTAB:-/etc/fstab}
install -d -o root -g root -m 0755 "$base"
# Its own mount, nosuid,nodev: a container's root makes setuid files and
# device nodes in a workspace, which the holder's host account must not
# be able to use.
if ! mountpoint -q "$base"; then
	mount --bind "$base" "$base"
	grep -qs "^$base $base " "$fstab" || echo "$base $base none bind,nosuid,nodev 0 0" >>"$fstab"
fi
mount -o remount,bind,nosuid,nodev "$base"
for user in "$@"; do
	owner=root
	id -u "$user" >/dev/null 2>&1 && owner=$user
	install -d -o "$owner" -m 0700 "$base/$user"
	echo "workspace $base/$user (mount it whole: docker run -v $base/$user:/work -w /work ...)"
done
