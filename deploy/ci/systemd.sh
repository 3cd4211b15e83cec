#!/usr/bin/env bash
# Issue 10, acceptance 3: the units of deploy/systemd/ under a real systemd.
#
# A Debian rootfs (mmdebstrap: systemd, python3) gets the static binary, Gunicorn and
# prometheus_client (pip install --target on the host: nothing is downloaded from inside
# a container), the shim, the example app of deploy/app, the units and the sysusers
# entry, and a drop-in per unit that only sets its port. Then:
#   1. systemd-analyze verify --root=ROOT prints nothing for the units;
#   2. systemd-analyze security --offline=true stays at or under the thresholds below;
#   3. systemd boots as PID 1 (podman run --systemd=always --network=host): the app and
#      the sidecar start, the sidecar runs as the app's user without capabilities,
#      serves the merged metrics of the real Gunicorn pool, proves a killed worker dead
#      and compacts its files without losing a count, logs no warning; `systemctl stop`
#      of the app stops the sidecar (BindsTo=) with status 0 and removes the directory;
#      starting the app again starts the sidecar ([Install] WantedBy=), and a crash of
#      the app's master takes the sidecar down and back up with the app's restart.
# The rootfs tarball and the Python packages are cached under target/deploy-ci/
# (deploy/ci/prepare.sh makes them ahead of time).
#
#   bash deploy/ci/systemd.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_NAME=systemd
. deploy/ci/lib.sh

# Exposure thresholds (systemd-analyze's 0-100 scale: 12 prints as "1.2 OK"). The
# sidecar scores 12 with systemd 252; 13 fails if any option worth 0.2 or more is
# dropped (ProtectSystem=, ProtectHome=, PrivateTmp=, PrivateDevices=, ProtectProc=,
# NoNewPrivileges=, the capability set, the system call and address family filters,
# RestrictNamespaces=, ...), not if one worth 0.1 is (MemoryDenyWriteExecute=,
# LockPersonality=). The example app unit scores 14.
SIDECAR_THRESHOLD=13
APP_THRESHOLD=15

need_podman
need_commands mmdebstrap:mmdebstrap systemd-analyze:systemd
mkdir -p "$DEPLOY_CACHE"
work=$(mktemp -d "$PWD/$DEPLOY_CACHE/systemd-run.XXXXXX")
ctr=multiproc-exporter-systemd-ci-$$
cleanup() {
  if [ -n "${DEPLOY_CI_KEEP:-}" ]; then
    say "kept (DEPLOY_CI_KEEP): container $ctr, $work (CONTAINERS_CONF=$work/containers.conf)"
    return
  fi
  podman rm -f -t 5 "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
containers_conf "$work"

say "static binary"
bin=$(deploy/image/build --binary-only 2> "$work/build.log") || { cat "$work/build.log" >&2; die "cargo build failed"; }

tarball=$(rootfs_tarball)
site=$(python_site)

say "rootfs with the binary, the app and the units"
root=$work/root
mkdir "$root"
tar -xf "$tarball" -C "$root"
install -m 0755 "$bin" "$root/usr/local/bin/multiproc-exporter"
mkdir -p "$root/usr/local/lib/python3.11/dist-packages" "$root/srv/gunicorn-app"
cp -r "$site"/. "$root/usr/local/lib/python3.11/dist-packages/"
install -m 0644 deploy/app/app.py deploy/app/gunicorn.conf.py "$root/srv/gunicorn-app/"
install -m 0644 deploy/systemd/gunicorn-app.service deploy/systemd/multiproc-exporter.service \
  "$root/etc/systemd/system/"
install -D -m 0644 deploy/systemd/gunicorn-app.sysusers "$root/etc/sysusers.d/gunicorn-app.conf"
systemd-sysusers --root="$root" "$root/etc/sysusers.d/gunicorn-app.conf"
uid=$(awk -F: '$1 == "gunicorn-app" { print $3 }' "$root/etc/passwd")
{ [ -n "$uid" ] && [ "$uid" != 0 ]; } || die "no gunicorn-app user"
install -d -o "$uid" -g "$uid" "$root/var/lib/ci-probe"
systemctl --root="$root" --quiet enable gunicorn-app.service multiproc-exporter.service
port=$(free_port)
app_port=$(free_port)
while [ "$app_port" = "$port" ]; do app_port=$(free_port); done
mkdir -p "$root/etc/systemd/system/multiproc-exporter.service.d" \
  "$root/etc/systemd/system/gunicorn-app.service.d"
printf '[Service]\nEnvironment=MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:%s\n' "$port" \
  > "$root/etc/systemd/system/multiproc-exporter.service.d/port.conf"
printf '[Service]\nEnvironment=GUNICORN_BIND=127.0.0.1:%s\n' "$app_port" \
  > "$root/etc/systemd/system/gunicorn-app.service.d/port.conf"

say "systemd-analyze verify --root"
units=(gunicorn-app.service multiproc-exporter.service)
verify=$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1) || die "verify failed: $verify"
[ -z "$verify" ] || die "systemd-analyze verify printed: $verify"

say "systemd-analyze security --offline=true"
for unit_threshold in multiproc-exporter.service:$SIDECAR_THRESHOLD gunicorn-app.service:$APP_THRESHOLD; do
  unit=${unit_threshold%%:*} threshold=${unit_threshold#*:}
  out=$(systemd-analyze security --offline=true --root="$root" --threshold="$threshold" "$unit" 2>&1) \
    || { echo "$out" >&2; die "$unit is above the threshold $threshold"; }
  say "$(echo "$out" | grep 'Overall exposure' | sed 's/^→ //') (threshold $threshold)"
done

say "boot: podman run --systemd=always --network=host"
# Without CAP_SYS_ADMIN, systemd in a container skips the mount, IPC and UTS namespaces
# of ProtectSystem=, ReadWritePaths=, ProtectProc=, PrivateTmp=, ... with a notice, and
# the sandbox would go untested. With it (and private UTS and cgroup namespaces, so
# that it reaches neither the host's name nor its cgroup tree) they are set up as on a
# host, and checked below.
podman run -d --name "$ctr" --systemd=always --network=host --uts=private \
  --cgroupns=private --cap-add=SYS_ADMIN --rootfs "$root" /usr/lib/systemd/systemd > /dev/null
in_ctr() { podman exec "$ctr" "$@"; }
journal() { in_ctr journalctl --no-pager -q -u "$1" >&2 || true; }
url=http://127.0.0.1:$port
app=http://127.0.0.1:$app_port
wait_http "$url/readyz" 60 || { journal gunicorn-app; journal multiproc-exporter; die "the sidecar did not get ready"; }
wait_http "$app/" 30 || { journal gunicorn-app; die "the app does not answer"; }
for unit in "${units[@]}"; do
  [ "$(in_ctr systemctl is-active "$unit")" = active ] || die "$unit is not active"
done

say "the sidecar runs as the app's user, without capabilities, under seccomp"
pid=$(in_ctr systemctl show -P MainPID multiproc-exporter.service)
status=$(in_ctr cat "/proc/$pid/status")
echo "$status" | grep -qE "^Uid:\s+$uid\s+$uid\s+$uid\s+$uid$" || die "sidecar uids: $(echo "$status" | grep ^Uid)"
echo "$status" | grep -qE '^CapEff:\s+0+$' || die "sidecar capabilities: $(echo "$status" | grep ^CapEff)"
echo "$status" | grep -qE '^NoNewPrivs:\s+1$' || die "NoNewPrivs is not set"
echo "$status" | grep -qE '^Seccomp:\s+2$' || die "no seccomp filter"
app_pid=$(in_ctr systemctl show -P MainPID gunicorn-app.service)
[ "$(in_ctr stat -c %u "/proc/$app_pid")" = "$uid" ] || die "the app does not run as gunicorn-app"

say "the sidecar's sandbox: what it can write and see"
hpid=$(podman top "$ctr" pid hpid | awk -v p="$pid" '$1 == p { print $2 }')
[ -n "$hpid" ] || die "no host pid for the sidecar ($pid)"
# As the sidecar's user, in its mount namespace and root.
as_sidecar() { nsenter -t "$hpid" -m -r -S "$uid" -G "$uid" /bin/sh -c "$1" 2>/dev/null; }
as_sidecar 'touch /run/gunicorn-app-metrics/.ci-probe && rm /run/gunicorn-app-metrics/.ci-probe' \
  || die "the metrics directory is not writable for the sidecar (ReadWritePaths=)"
# A directory the user owns outside ReadWritePaths=: writable for the user, not for
# the sidecar.
in_ctr setpriv --reuid "$uid" --regid "$uid" --clear-groups touch /var/lib/ci-probe/outside \
  || die "the probe directory is not writable for gunicorn-app at all"
err=$(nsenter -t "$hpid" -m -r -S "$uid" -G "$uid" /bin/sh -c 'touch /var/lib/ci-probe/sidecar' 2>&1) \
  && die "/var/lib/ci-probe is writable for the sidecar (ProtectSystem=strict)"
case "$err" in *"Read-only file system"*) ;; *) die "unexpected: $err" ;; esac
! as_sidecar 'ls /home' || die "/home is readable for the sidecar (ProtectHome=)"
as_sidecar 'test ! -e /proc/1 && test -e /proc/'"$app_pid"' && test ! -e /proc/meminfo' \
  || die "/proc shows other users' processes or more than pids (ProtectProc=, ProcSubset=)"
notices=$(in_ctr journalctl --no-pager -q -p warning -u multiproc-exporter.service -u gunicorn-app.service)
[ -z "$notices" ] || die "systemd warned about the units: $notices"

say "requests to the Gunicorn pool, merged by the sidecar"
# 30 requests, and the one wait_http made: 31, over three workers.
for _ in $(seq 30); do curl -fsS -o /dev/null "$app/"; done
curl -fsS "$url/metrics" > "$work/metrics.txt"
has_sample "$work/metrics.txt" 'http_requests_total{method="GET",route="/",status="200"}' 31.0
has_sample "$work/metrics.txt" 'http_request_duration_seconds_count{route="/"}' 31.0
grep -q '^multiproc_exporter_liveness_info{.*evidence="lock+proc"' "$work/metrics.txt" \
  || die "not lock+proc evidence: $(grep "^multiproc_exporter_liveness_info" "$work/metrics.txt")"

say "a worker killed: proven dead, compacted, nothing lost"
victim=$(in_ctr ls /run/gunicorn-app-metrics | sed -n 's/^counter_\([0-9]*\)\.db$/\1/p' | head -1)
[ -n "$victim" ] || die "no worker's counter file in /run/gunicorn-app-metrics"
in_ctr bash -c "kill -KILL $victim"
wait_absorbed "$url/metrics" "$work/metrics.txt" || die "the killed worker's files were not absorbed"
has_sample "$work/metrics.txt" 'http_requests_total{method="GET",route="/",status="200"}' 31.0
in_ctr test ! -e "/run/gunicorn-app-metrics/counter_$victim.db" || die "the dead worker's counter file is still there"
# The sidecar's own lines (tracing levels, not journal priorities).
warnings=$(in_ctr journalctl --no-pager -q -o cat SYSLOG_IDENTIFIER=multiproc-exporter \
  | grep -E '(WARN|ERROR) ' || true)
[ -z "$warnings" ] || die "the sidecar logged warnings: $warnings"

say "systemctl restart gunicorn-app: the directory is kept, the sidecar restarted"
before=$(in_ctr systemctl show -P MainPID multiproc-exporter.service)
in_ctr touch /run/gunicorn-app-metrics/.ci-kept
in_ctr systemctl restart gunicorn-app.service
wait_http "$url/readyz" 30 || { journal multiproc-exporter; die "the sidecar did not return after a restart"; }
[ "$(in_ctr systemctl show -P MainPID multiproc-exporter.service)" != "$before" ] \
  || die "the sidecar was not restarted with the app (PartOf=)"
in_ctr test -e /run/gunicorn-app-metrics/.ci-kept || die "the directory was not kept (RuntimeDirectoryPreserve=restart)"

say "systemctl stop gunicorn-app stops the sidecar too"
in_ctr systemctl stop gunicorn-app.service
state=$(in_ctr systemctl is-active multiproc-exporter.service || true)
[ "$state" = inactive ] || die "the sidecar is $state after the app stopped"
result=$(in_ctr systemctl show -P Result multiproc-exporter.service)
code=$(in_ctr systemctl show -P ExecMainStatus multiproc-exporter.service)
[ "$result:$code" = success:0 ] || { journal multiproc-exporter; die "the sidecar ended with $result, status $code"; }
in_ctr test ! -e /run/gunicorn-app-metrics || die "/run/gunicorn-app-metrics outlived the app"
! curl -fsS -o /dev/null --max-time 2 "$url/healthz" 2>/dev/null || die "something still answers on $url"

say "systemctl start gunicorn-app starts the sidecar again"
in_ctr systemctl start gunicorn-app.service
wait_http "$url/readyz" 30 || { journal multiproc-exporter; die "the sidecar did not come back with the app"; }

say "the app's master killed: the sidecar stops with it and returns with its restart"
before=$(in_ctr systemctl show -P MainPID multiproc-exporter.service)
in_ctr systemctl kill --kill-whom=main --signal=SIGKILL gunicorn-app.service
for _ in $(seq 100); do
  after=$(in_ctr systemctl show -P MainPID multiproc-exporter.service)
  [ "$after" != "$before" ] && [ "$after" != 0 ] && break
  sleep 0.1
done
[ "$after" != "$before" ] || die "the sidecar outlived the app's crash"
wait_http "$url/readyz" 30 || { journal multiproc-exporter; die "the sidecar did not return"; }
[ "$(in_ctr systemctl show -P NRestarts gunicorn-app.service)" = 1 ] || die "the app was not restarted"

say "ok: systemd check took ${SECONDS}s"
