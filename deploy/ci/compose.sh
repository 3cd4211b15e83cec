#!/usr/bin/env bash
# Issue 10, acceptance 6: the compose stack (deploy/compose).
#   1. compose.yaml validates against the compose specification (check-jsonschema's
#      copy of it), and so does its merge with compose.host.yaml (whose `!reset` tags
#      that validator cannot parse: the merged configuration podman-compose prints).
#   2. What Prometheus and Alertmanager would mount, laid out from that configuration,
#      passes promtool check config and amtool check-config, in both variants, and is
#      deploy/prometheus's own files (the ones the rule tests and the live alert test
#      use); Grafana mounts deploy/grafana's dashboard.
#   3. The two services whose images build here, app and sidecar, started by the
#      stack's own command (deploy/compose/up --host: it builds both images, then
#      podman-compose with compose.host.yaml: host networking on 127.0.0.1, ports
#      chosen at run time, no network created), run together: the sidecar, as the
#      app's UID/GID, serves the merged metrics of the requests sent to the app. Prometheus, Alertmanager and Grafana need
#      registry images and are not started.
#
#   bash deploy/ci/compose.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_NAME=compose
. deploy/ci/lib.sh

need_podman
need_commands promtool:prometheus amtool:prometheus-alertmanager
tools=$(compose_venv)
work=$(mktemp -d)
project=multiproc-exporter-ci-$$
sidecar_image=localhost/multiproc-exporter:ci-compose-$$
app_image=localhost/multiproc-exporter-example-app:ci-compose-$$
export SIDECAR_IMAGE=$sidecar_image APP_IMAGE=$app_image
compose=("$tools/podman-compose" -p "$project")
cleanup() {
  (cd deploy/compose && "${compose[@]}" -f compose.yaml -f compose.host.yaml down -v -t 5) \
    >/dev/null 2>&1 || true
  podman rmi -f "$sidecar_image" "$app_image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
containers_conf "$work"

say "compose specification: compose.yaml, and merged with compose.host.yaml"
(cd deploy/compose && "${compose[@]}" -f compose.yaml config) > "$work/bridge.yaml"
(cd deploy/compose && "${compose[@]}" -f compose.yaml -f compose.host.yaml config) > "$work/host.yaml"
"$tools/check-jsonschema" --builtin-schema vendor.compose-spec \
  deploy/compose/compose.yaml "$work/bridge.yaml" "$work/host.yaml" >&2

for variant in bridge host; do
  say "$variant: promtool check config and amtool check-config on what the stack mounts"
  paths=$("$tools/python" deploy/ci/compose_mounts.py deploy/compose "$work/$variant" \
    < "$work/$variant.yaml") || die "the $variant stack's mounts"
  { read -r prometheus_yml; read -r alertmanager_yml; } <<< "$paths"
  promtool check config "$prometheus_yml" >&2 || die "promtool check config ($variant)"
  amtool check-config "$alertmanager_yml" >&2 || die "amtool check-config ($variant)"
done

export APP_PORT SIDECAR_PORT
APP_PORT=$(free_port)
SIDECAR_PORT=$(free_port)
while [ "$SIDECAR_PORT" = "$APP_PORT" ]; do SIDECAR_PORT=$(free_port); done
networks_before=$(podman network ls -q | sort)
say "deploy/compose/up --host -- app sidecar (images $sidecar_image, $app_image; app :$APP_PORT, sidecar :$SIDECAR_PORT)"
COMPOSE="${compose[*]}" deploy/compose/up --host -- app sidecar > "$work/up.log" 2>&1 \
  || { cat "$work/up.log" >&2; die "deploy/compose/up"; }
[ "$(podman network ls -q | sort)" = "$networks_before" ] || die "podman-compose created a network"
sidecar=http://127.0.0.1:$SIDECAR_PORT app=http://127.0.0.1:$APP_PORT
wait_http "$sidecar/healthz" 30 || die "the sidecar's /healthz did not answer"
wait_http "$app/healthz" 30 || { podman logs "${project}_app_1" >&2 || true; die "the app did not answer"; }
for _ in $(seq 7); do curl -fsS -o /dev/null "$app/"; done
for _ in $(seq 3); do curl -sS -o /dev/null "$app/error"; done
wait_http "$sidecar/readyz" 30 || die "the sidecar's /readyz did not answer 200"
curl -fsS "$sidecar/metrics" > "$work/metrics.txt"
has_sample "$work/metrics.txt" 'http_requests_total{method="GET",route="/",status="200"}' 7.0
has_sample "$work/metrics.txt" 'http_requests_total{method="GET",route="/error",status="500"}' 3.0
has_sample "$work/metrics.txt" 'http_request_duration_seconds_count{route="/"}' 7.0
has_sample "$work/metrics.txt" multiproc_exporter_ready 1.0
# Same UID/GID as the app: compaction can write the directory.
has_sample "$work/metrics.txt" 'multiproc_exporter_compaction_skipped_total{reason="no_write_permission"}' 0.0
pid=$(podman inspect --format '{{.State.Pid}}' "${project}_sidecar_1")
ids=$(awk '/^Uid:|^Gid:/ { print $2 }' "/proc/$pid/status" | xargs)
[ "$ids" = "1000 1000" ] || die "the sidecar runs as uid and gid $ids, not 1000 1000"
say "ok: the compose check took ${SECONDS}s"
