#!/usr/bin/env bash
# Makes the cached artefacts of the checks in deploy/ci/ ahead of time (the
# virtualenvs with the pinned prometheus_client and the Kubernetes checkers, the rootfs
# tarballs, the Python packages): mostly downloads and unpacking, so .ci/run runs it in
# the background while it compiles and tests. Needs the packages .ci/run installs first
# (mmdebstrap). Idempotent: what exists under target/deploy-ci/ is kept.
#
#   bash deploy/ci/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_NAME=prepare
. deploy/ci/lib.sh

need_commands mmdebstrap:mmdebstrap
pinned_venv > /dev/null
kubernetes_venv > /dev/null
python_site > /dev/null
rootfs_tarball > /dev/null
rootfs_tarball python3 > /dev/null
compose_venv > /dev/null
say "ok: prepared in ${SECONDS}s"
