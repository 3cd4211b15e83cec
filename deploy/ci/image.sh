#!/usr/bin/env bash
# Issue 10, acceptance 1: the image built from the committed definition
# (deploy/image/build + deploy/image/Containerfile) runs with --network=host and a
# read-only root file system on a port chosen at run time, over a directory written by
# real prometheus_client workers: /healthz, /readyz and /metrics (the merged samples)
# answer, `healthcheck` works inside the container, the process is not root and has no
# capabilities, the image holds nothing but the binary and its licence, and `podman
# stop` ends it with status 0 within seconds. Everything it creates is removed at exit.
#
#   bash deploy/ci/image.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_NAME=image
. deploy/ci/lib.sh

need_podman
work=$(mktemp -d)
image=localhost/multiproc-exporter:ci-$$
ctr=multiproc-exporter-ci-$$
cleanup() {
  podman rm -f -t 0 "$ctr" >/dev/null 2>&1 || true
  podman rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
containers_conf "$work"

say "building $image from deploy/image/Containerfile (the static binary: minutes the first time)"
deploy/image/build "$image" > "$work/build.log" 2>&1 || { cat "$work/build.log" >&2; die "build failed"; }
size=$(podman image inspect --format '{{.Size}}' "$image")
say "image size: $((size / 1024)) KiB"
[ "$(podman image inspect --format '{{.Config.User}}' "$image")" = 65534:65534 ] \
  || die "the image does not run as 65534:65534"

say "the image holds the binary and its licence, no shell"
podman create --name "$ctr-files" "$image" >/dev/null
files=$(podman export "$ctr-files" | tar -t | sort | tr '\n' ' ')
podman rm "$ctr-files" >/dev/null
[ "$files" = "LICENSE multiproc-exporter " ] || die "unexpected image content: $files"
if podman run --rm --network=host --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1; then
  die "/bin/sh runs in the image"
fi

say "real prometheus_client workers write the directory"
python=$(pinned_venv)
mkdir "$work/metrics"
"$python" deploy/ci/writers.py "$work/metrics" 3 > "$work/expected.txt"
# The image's user must be able to write the directory (compaction), as the app's would.
chown -R 65534:65534 "$work/metrics"

port=$(free_port)
say "podman run --network=host --read-only on 127.0.0.1:$port"
podman run -d --name "$ctr" --network=host --read-only \
  -v "$work/metrics:/run/metrics" \
  -e MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS="127.0.0.1:$port" \
  --health-cmd '["/multiproc-exporter", "healthcheck"]' --health-interval disable \
  "$image" >/dev/null
url=http://127.0.0.1:$port
wait_http "$url/healthz" 20 || { podman logs "$ctr" >&2; die "/healthz did not answer"; }
wait_http "$url/readyz" 20 || { podman logs "$ctr" >&2; die "/readyz did not answer 200"; }
curl -fsS "$url/metrics" > "$work/metrics.txt"
while read -r head value; do
  has_sample "$work/metrics.txt" "$head" "$value"
done < "$work/expected.txt"
grep -q '^multiproc_exporter_ready 1' "$work/metrics.txt" || die "multiproc_exporter_ready is not 1"

say "healthcheck inside the container"
podman exec "$ctr" /multiproc-exporter healthcheck >&2 || die "healthcheck failed in the container"
podman healthcheck run "$ctr" >&2 || die "podman healthcheck run: unhealthy"

say "the process is not root"
pid=$(podman inspect --format '{{.State.Pid}}' "$ctr")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
gids=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
[ "$uids" = "65534 65534 65534 65534" ] || die "uids of the sidecar: $uids"
[ "$gids" = "65534 65534 65534 65534" ] || die "gids of the sidecar: $gids"
caps=$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")
[ "$caps" = 0000000000000000 ] || die "effective capabilities: $caps"

say "podman stop"
start=$(date +%s%N)
podman stop -t 10 "$ctr" >/dev/null
took_ms=$((($(date +%s%N) - start) / 1000000))
code=$(podman inspect --format '{{.State.ExitCode}}' "$ctr")
[ "$code" = 0 ] || { podman logs "$ctr" >&2; die "exit status $code after podman stop"; }
[ "$took_ms" -lt 5000 ] || die "podman stop took ${took_ms} ms (SIGKILL after 10 s means SIGTERM was ignored)"
podman logs "$ctr" > "$work/sidecar.log" 2>&1
grep -q 'SIGTERM received' "$work/sidecar.log" || die "no 'SIGTERM received' in the log"
say "ok: stopped in ${took_ms} ms with status 0; image check took ${SECONDS}s"
