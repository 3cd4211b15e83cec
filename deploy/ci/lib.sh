# shellcheck shell=bash
# Helpers shared by the deploy checks in deploy/ci/ (sourced, not run). The callers set
# `set -euo pipefail` and run from the repository's root.

# Where the heavy, reusable artefacts go (rootfs tarball, Python packages, virtualenv).
DEPLOY_CACHE=target/deploy-ci

# Prints a timestamped progress line on stderr.
say() { printf '[%s %3ds] %s\n' "${CI_NAME:-deploy}" "$SECONDS" "$*" >&2; }

# Fails the check with a message.
die() { say "FAIL: $*"; exit 1; }

# Installs the Debian packages whose command is missing: `need_commands cmd:pkg ...`.
need_commands() {
  local want=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || want+=("${pair#*:}")
  done
  [ "${#want[@]}" -eq 0 ] || install_packages "${want[@]}"
}

# apt-get install, quietly.
install_packages() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# podman and what it needs on this kind of host (rootful, runc), as one set.
need_podman() {
  local pkgs=(buildah podman runc catatonit fuse-overlayfs uidmap slirp4netns
    containernetworking-plugins golang-github-containers-common)
  if ! command -v podman >/dev/null || ! command -v buildah >/dev/null \
    || ! command -v runc >/dev/null || ! command -v catatonit >/dev/null; then
    install_packages "${pkgs[@]}"
  fi
  need_commands curl:curl
}

# Writes a containers.conf into directory $1 and exports CONTAINERS_CONF: podman asks
# for more open files than the hard limit allows unless told the limit, and crun
# refuses a hybrid cgroup host (runc does not).
containers_conf() {
  local n
  n=$(ulimit -Hn)
  cat > "$1/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$n:$n", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF="$1/containers.conf"
}

# A loopback TCP port that was free a moment ago.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The version tests/py/requirements.txt pins for a Python package.
pinned() {
  local v
  v=$(sed -n "s/^$1==//p" tests/py/requirements.txt)
  [ -n "$v" ] || die "no pin for $1 in tests/py/requirements.txt"
  echo "$v"
}

# Waits until URL answers 200 (at most $2 seconds, default 30).
wait_http() {
  local url=$1 limit=${2:-30} start=$SECONDS
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    [ $((SECONDS - start)) -lt "$limit" ] || return 1
    sleep 0.2
  done
}

# Scrapes URL (the sidecar's /metrics) into file $2 until it shows a file absorbed by
# compaction (a dead worker's files folded), for at most 20 s; fails if none was. Any
# further arguments go to curl (TLS and credentials).
wait_absorbed() {
  local url=$1 out=$2 absorbed=0
  shift 2
  for _ in $(seq 100); do
    curl -fsS "$@" "$url" > "$out"
    absorbed=$(awk '$1 == "multiproc_exporter_files_absorbed_total" { print $2 }' "$out")
    [ "${absorbed%.*}" -gt 0 ] 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# Asserts that the exposition in file $1 has the sample line `$2 $3` (exactly).
has_sample() {
  grep -qxF "$2 $3" "$1" || die "no sample '$2 $3' in $1: $(grep -F "${2%%\{*}" "$1" | head -5 | tr '\n' ' ')"
}

# A virtualenv target/deploy-ci/$1 with the packages $2... installed (pinned
# requirements), reused while they are unchanged; prints its python.
venv_with() {
  local venv=$DEPLOY_CACHE/$1
  shift
  if [ "$(cat "$venv/pins.txt" 2>/dev/null)" != "$*" ]; then
    say "virtualenv $venv with $*"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
    echo "$*" > "$venv/pins.txt"
  fi
  echo "$venv/bin/python"
}

# A virtualenv with the prometheus_client the tests pin; prints its python.
pinned_venv() {
  venv_with venv "prometheus_client==$(pinned prometheus_client)"
}

# A virtualenv with the Kubernetes manifest checkers of deploy/ci/kubernetes.sh; prints
# its python. kubernetes-validate bundles the API schemas of Kubernetes 1.25 to 1.37;
# cloudcoil's pydantic models of the Prometheus Operator v0.80 CRDs (PodMonitor,
# ServiceMonitor, PrometheusRule) are what kubernetes-validate cannot check (it only
# warns about custom kinds). The newest cloudcoil-models-prometheus-operator needs a
# newer Python than Debian 12's.
kubernetes_venv() {
  venv_with kubernetes-venv kubernetes-validate==1.37.0 \
    cloudcoil-models-prometheus-operator==0.80.1.0 cloudcoil==0.6.0 pydantic==2.14.4
}

# A Debian 12 root file system with the packages $1 (comma-separated; default the
# systemd check's: systemd,python3), no docs, man pages or locales, as a tarball keyed
# by what it is made of; prints its path. The example app's image uses python3 alone.
rootfs_tarball() {
  local packages=${1:-systemd,python3} key tarball
  key=$(printf 'bookworm %s v1' "$packages" | sha256sum | cut -c1-12)
  tarball=$DEPLOY_CACHE/rootfs-$key.tar
  if [ ! -s "$tarball" ]; then
    say "mmdebstrap bookworm with $packages (cached as $tarball)"
    mkdir -p "$DEPLOY_CACHE"
    rm -rf "$tarball.tmp"
    mmdebstrap --quiet --format=tar --variant=essential --include="$packages" \
      --dpkgopt=force-unsafe-io --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$tarball.tmp" >&2
    mv "$tarball.tmp" "$tarball"
  fi
  echo "$tarball"
}

# Gunicorn and prometheus_client as tests/py/requirements.txt pins them, and the shim,
# installed with `pip install --target` into a directory keyed by the pins and the
# shim's sources (copied into a rootfs: nothing is downloaded from inside a
# container); prints its path.
python_site() {
  local pins key site
  pins="gunicorn==$(pinned gunicorn) prometheus_client==$(pinned prometheus_client)"
  key=$( { echo "$pins v1"; find shim/python -type f -not -path '*/__pycache__/*' \
    -not -path '*/tests/*' -not -path '*/build/*' -not -path '*.egg-info/*' | sort \
    | xargs cat; } | sha256sum | cut -c1-12)
  site=$DEPLOY_CACHE/site-$key
  if [ ! -d "$site" ]; then
    say "pip install --target: $pins and the shim (cached as $site)"
    mkdir -p "$DEPLOY_CACHE"
    rm -rf "$site.tmp" "$site.src"
    # From a clean copy: setuptools builds next to the sources.
    cp -r shim/python "$site.src"
    rm -rf "$site.src/build" "$site.src"/*.egg-info
    # shellcheck disable=SC2086
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      --no-compile --target "$site.tmp" $pins "$site.src" >&2
    rm -rf "$site.tmp/bin" "$site.src"
    mv "$site.tmp" "$site"
  fi
  echo "$site"
}

# A virtualenv under target/deploy-ci/ with the compose tools the compose check pins
# (podman-compose, check-jsonschema with its copy of the compose specification);
# prints its bin directory (absolute: the check runs it from deploy/compose).
compose_venv() {
  local python
  python=$(venv_with compose-venv podman-compose==1.6.0 check-jsonschema==0.39.0)
  echo "$PWD/${python%/python}"
}
