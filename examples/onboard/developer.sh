#!/usr/bin/env bash
# On the developer's machine, with the archive from admin.sh:
#
#   ./developer.sh dtls-alice.tar.gz prod
#
# installs it as ~/.docker/dtls/prod, makes it the default, checks it with
# docker, and adds a Docker context "prod" too.
set -euo pipefail
archive=${1:?usage: developer.sh ARCHIVE NAME}
name=${2:?usage: developer.sh ARCHIVE NAME}

dtls import "$archive" --name "$name" --force
dtls ls

# The docker-machine way: variables in this shell.
eval "$(dtls env)"
docker version --format 'server {{.Server.Version}} via DOCKER_HOST'

# The contexts way: DOCKER_HOST would override the context, so unset first.
eval "$(dtls env --unset)"
dtls context create "$name" --force
docker --context "$name" version --format "server {{.Server.Version}} via context $name"
