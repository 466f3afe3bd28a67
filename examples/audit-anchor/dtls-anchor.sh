#!/bin/sh
# Sends the head of the authorization plugin's audit trail (the last
# record's seq and the SHA-256 of its line, as 'dtls authz log --head'
# prints it) to the journal under the tag dtls-anchor. A later
#   dtls authz log --verify --anchor "$(journalctl -t dtls-anchor -o cat -n 1)"
# fails if that record was removed or changed since, which the chain alone
# cannot show for the newest records. Forward the journal or syslog to
# another machine (rsyslog: *.* @@loghost:514), or send it there directly
# (logger -n loghost -P 514 -T): an anchor on the trail's own disk guards
# against little.
#
# Environment: DTLS_AUDIT_LOG (default /var/log/dtls/authz.log), LOGGER
# (default logger) and its arguments in LOGGER_ARGS.
set -eu
head=$(dtls authz log --head --audit-log "${DTLS_AUDIT_LOG:-/var/log/dtls/authz.log}")
# shellcheck disable=SC2086 # LOGGER_ARGS is a list of arguments
"${LOGGER:-logger}" ${LOGGER_ARGS:-} -t dtls-anchor -- "$head"
echo "dtls-anchor: sent $head"
