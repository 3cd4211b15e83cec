#!/usr/bin/env bash
# Issue 10, acceptance 2: the manifests of deploy/kubernetes/.
#   1. base/prometheusrules.yaml is what deploy/kubernetes/generate makes of the rule
#      files of deploy/prometheus;
#   2. the base and every overlay render with `kubectl kustomize` and pass
#      `kubernetes-validate --strict` at Kubernetes 1.29 and 1.37, printing no warning
#      but the one about the operator's kinds; the base (a native sidecar) fails at
#      1.27 on the init container's restartPolicy, the classic overlay passes there;
#   3. PodMonitor, ServiceMonitor and PrometheusRule pass the operator's schemas made
#      strict, the rules and the dashboard are the files of deploy/prometheus and
#      deploy/grafana, and the pod spec keeps what docs/deployment.md says of it
#      (deploy/ci/manifests.py);
#   4. the rendered pod runs under `podman kube play` through a CI overlay written
#      below (the sidecar as a plain container, since kube play does not run native
#      sidecars; host network on 127.0.0.1 and ports chosen at run time, so no
#      `ports:` and numeric probe ports; one replica; the images built here from
#      deploy/image and deploy/app; the variant's securityContext, volumes, mounts
#      and resources unchanged, which manifests.py --same-pod checks): the sidecar
#      answers /healthz, /readyz and /metrics, serves exactly the requests sent to
#      the real Gunicorn app, both run as the manifest's UID/GID without capabilities
#      under seccomp with a read-only root file system, a worker killed with SIGKILL
#      is proven dead from the other container (the shim's lock) and folded into an
#      archive without losing a count, and the evidence is the shim's locks alone
#      (separate pid namespaces). Then the same with the shared-pid overlay, where the
#      evidence must be lock+proc.
# Only loopback traffic (hostNetwork, never a bridge network). Everything it creates is
# removed at exit (DEPLOY_CI_KEEP=1 keeps it).
#
#   bash deploy/ci/kubernetes.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_NAME=kubernetes
. deploy/ci/lib.sh

# Every kustomization users apply, by name (deploy/kubernetes/NAME).
VARIANTS=(base overlays/classic overlays/shared-pid overlays/servicemonitor
  overlays/readiness overlays/kube-prometheus-stack)
# The UID/GID the manifests run both containers as.
UID_GID=1000

command -v kubectl >/dev/null || die "kubectl (with kustomize) is needed"
need_podman
mkdir -p "$DEPLOY_CACHE"
work=$(mktemp -d "$PWD/$DEPLOY_CACHE/kubernetes-run.XXXXXX")
sidecar_image=localhost/multiproc-exporter:ci-k8s-$$
app_image=localhost/multiproc-exporter-example-app:ci-k8s-$$
pods=()
cleanup() {
  if [ -n "${DEPLOY_CI_KEEP:-}" ]; then
    say "kept (DEPLOY_CI_KEEP): pods ${pods[*]:-none}, images, $work (CONTAINERS_CONF=$work/containers.conf)"
    return
  fi
  local pod
  for pod in "${pods[@]}"; do podman pod rm -f -t 0 "$pod" >/dev/null 2>&1 || true; done
  podman rmi -f "$sidecar_image" "$app_image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
containers_conf "$work"
python=$(kubernetes_venv)
validate=${python%/python}/kubernetes-validate

say "base/prometheusrules.yaml is generated from deploy/prometheus"
deploy/kubernetes/generate --check

say "kubectl kustomize: ${VARIANTS[*]}"
mkdir "$work/rendered"
for v in "${VARIANTS[@]}"; do
  kubectl kustomize "deploy/kubernetes/$v" > "$work/rendered/${v##*/}.yaml" \
    || die "kubectl kustomize deploy/kubernetes/$v failed"
done

# kubernetes-validate --strict at version $1 on rendered file $2; prints its output
# without the warnings about the operator's kinds (checked below), fails otherwise.
k8s_validate() {
  local out code=0
  out=$("$validate" --strict --quiet -k "$1" "$2" 2>&1) || code=$?
  out=$(echo "$out" | grep -v "^WARN .* Couldn't find schema for kind \(PodMonitor\|ServiceMonitor\|PrometheusRule\) with api version monitoring.coreos.com/v1 " || true)
  echo "$out"
  return "$code"
}
for version in 1.29.0 1.37.0; do
  say "kubernetes-validate --strict -k $version"
  for f in "$work"/rendered/*.yaml; do
    out=$(k8s_validate "$version" "$f") || die "$(basename "$f") at $version: $out"
    [ -z "$out" ] || die "$(basename "$f") at $version printed: $out"
  done
done
say "at 1.27 the native sidecar fails, the classic overlay passes"
if out=$(k8s_validate 1.27.0 "$work/rendered/base.yaml"); then
  die "the base passed at 1.27: it is no native sidecar"
fi
echo "$out" | grep -q "initContainers.0: Additional properties are not allowed ('restartPolicy' was unexpected)" \
  || die "the base failed at 1.27 for another reason: $out"
[ "$(echo "$out" | grep -c '^ERROR')" = 1 ] || die "the base has more errors at 1.27: $out"
out=$(k8s_validate 1.27.0 "$work/rendered/classic.yaml") || die "the classic overlay fails at 1.27: $out"
[ -z "$out" ] || die "the classic overlay at 1.27 printed: $out"

say "the operator's kinds, strictly; the rules, the dashboard and the pod spec's promises"
"$python" deploy/ci/manifests.py "$work/rendered" >&2

say "images: the sidecar (deploy/image/build) and the example app (deploy/app/build)"
deploy/image/build "$sidecar_image" > "$work/sidecar-build.log" 2>&1 \
  || { cat "$work/sidecar-build.log" >&2; die "deploy/image/build failed"; }
deploy/app/build "$app_image" > "$work/app-build.log" 2>&1 \
  || { cat "$work/app-build.log" >&2; die "deploy/app/build failed"; }

# Runs variant $1 (an overlay) under podman kube play and checks it; $2 is the
# liveness evidence the sidecar must report. A variant with a native sidecar gets
# components/plain-sidecar, as overlays/classic has it.
play() {
  local variant=$1 evidence=$2 name dir port app_port url app pod components="" warnings
  name=gunicorn-app-ci-$$-${variant##*/}
  dir=$work/play-${variant##*/}
  port=$(free_port)
  app_port=$(free_port)
  while [ "$app_port" = "$port" ]; do app_port=$(free_port); done
  mkdir "$dir"
  grep -q '^ *restartPolicy: Always$' "$work/rendered/${variant##*/}.yaml" \
    && components="components: [$(realpath --relative-to="$dir" deploy/kubernetes/components/plain-sidecar)]"
  # The CI overlay: what kube play needs, and nothing the pod's securityContext,
  # volumes or probes are made of.
  cat > "$dir/kustomization.yaml" <<KUST
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$dir" "deploy/kubernetes/$variant")
$components
nameSuffix: -ci-$$-${variant##*/}
images:
  - name: registry.example/multiproc-exporter
    newName: ${sidecar_image%:*}
    newTag: ${sidecar_image##*:}
  - name: registry.example/gunicorn-app
    newName: ${app_image%:*}
    newTag: ${app_image##*:}
patches:
  - target:
      kind: Deployment
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: gunicorn-app
      spec:
        replicas: 1
        template:
          spec:
            hostNetwork: true
            containers:
              - name: app
                args: ["--bind=127.0.0.1:$app_port", "--worker-tmp-dir=/dev/shm"]
                ports: null
                livenessProbe: {httpGet: {port: $app_port}}
                readinessProbe: {httpGet: {port: $app_port}}
              - name: multiproc-exporter
                env:
                  - name: MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS
                    value: "127.0.0.1:$port"
                ports: null
                startupProbe: {httpGet: {port: $port}}
                livenessProbe: {httpGet: {port: $port}}
KUST
  kubectl kustomize "$dir" > "$dir/all.yaml" || die "kubectl kustomize of the CI overlay failed"
  # kube play gets the Deployment alone (it knows no PodMonitor).
  "$python" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment"]
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)' "$dir/all.yaml" > "$dir/pod.yaml"
  "$python" deploy/ci/manifests.py --same-pod "$work/rendered/${variant##*/}.yaml" "$dir/pod.yaml"

  say "$variant: podman kube play (app on 127.0.0.1:$app_port, sidecar on 127.0.0.1:$port)"
  # kube play names the pod of a Deployment after it, with a replica index.
  pod=$name-pod-0
  pods+=("$pod")
  # From the run directory: kube play builds an image from a directory named like it.
  (cd "$dir" && podman kube play --build=false pod.yaml > kube-play.log 2>&1) \
    || { cat "$dir/kube-play.log" >&2; die "podman kube play failed"; }
  local app_ctr=$pod-app sidecar_ctr=$pod-multiproc-exporter
  url=http://127.0.0.1:$port
  app=http://127.0.0.1:$app_port
  logs() { podman logs "$app_ctr" >&2 || true; podman logs "$sidecar_ctr" >&2 || true; }
  wait_http "$url/healthz" 30 || { logs; die "$variant: /healthz of the sidecar did not answer"; }
  wait_http "$app/healthz" 30 || { logs; die "$variant: the app does not answer"; }
  wait_http "$url/readyz" 30 || { logs; die "$variant: /readyz did not answer 200"; }

  say "$variant: both containers run as $UID_GID:$UID_GID, without capabilities, under seccomp"
  local ctr pid status
  for ctr in "$app_ctr" "$sidecar_ctr"; do
    pid=$(podman inspect --format '{{.State.Pid}}' "$ctr")
    status=$(cat "/proc/$pid/status")
    echo "$status" | grep -qE "^Uid:\s+$UID_GID\s+$UID_GID\s+$UID_GID\s+$UID_GID$" || die "$ctr: $(echo "$status" | grep ^Uid)"
    echo "$status" | grep -qE "^Gid:\s+$UID_GID\s+$UID_GID\s+$UID_GID\s+$UID_GID$" || die "$ctr: $(echo "$status" | grep ^Gid)"
    echo "$status" | grep -qE '^CapEff:\s+0+$' || die "$ctr: $(echo "$status" | grep ^CapEff)"
    echo "$status" | grep -qE '^NoNewPrivs:\s+1$' || die "$ctr: NoNewPrivs is not set"
    echo "$status" | grep -qE '^Seccomp:\s+2$' || die "$ctr: no seccomp filter"
    [ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$ctr")" = true ] \
      || die "$ctr: the root file system is writable"
  done

  say "$variant: requests to the app, merged by the sidecar"
  for _ in $(seq 25); do curl -fsS -o /dev/null "$app/"; done
  for _ in $(seq 3); do curl -sS -o /dev/null "$app/error"; done
  curl -fsS "$url/metrics" > "$dir/metrics.txt"
  has_sample "$dir/metrics.txt" 'http_requests_total{method="GET",route="/",status="200"}' 25.0
  has_sample "$dir/metrics.txt" 'http_requests_total{method="GET",route="/error",status="500"}' 3.0
  has_sample "$dir/metrics.txt" 'http_request_duration_seconds_count{route="/"}' 25.0
  grep -q '^multiproc_exporter_ready 1' "$dir/metrics.txt" || die "$variant: multiproc_exporter_ready is not 1"

  say "$variant: a worker killed: proven dead from the sidecar's container, compacted, nothing lost"
  local victim
  victim=$(podman exec "$app_ctr" sh -c 'ls /run/metrics' | sed -n 's/^counter_\([0-9]*\)\.db$/\1/p' | head -1)
  [ -n "$victim" ] || die "$variant: no worker's counter file in /run/metrics"
  # (The image has no kill(1): the shell's builtin.)
  podman exec "$app_ctr" sh -c "kill -KILL $victim"
  wait_absorbed "$url/metrics" "$dir/metrics.txt" \
    || { logs; die "$variant: the killed worker's files were not absorbed"; }
  has_sample "$dir/metrics.txt" 'http_requests_total{method="GET",route="/",status="200"}' 25.0
  has_sample "$dir/metrics.txt" 'http_requests_total{method="GET",route="/error",status="500"}' 3.0
  ! podman exec "$app_ctr" test -e "/run/metrics/counter_$victim.db" \
    || die "$variant: the dead worker's counter file is still there"
  # Only now, after many lifecycle rounds: the evidence a variant gives is decided at
  # run time (a shared pid namespace is proven, never assumed).
  has_sample "$dir/metrics.txt" "multiproc_exporter_liveness_info{evidence=\"$evidence\",mode=\"auto\"}" 1.0
  podman logs "$sidecar_ctr" > "$dir/sidecar.log" 2>&1
  if [ "$evidence" = lock ] && grep -q 'pid namespace shared' "$dir/sidecar.log"; then
    die "$variant: the sidecar took its own pid namespace for the app's: $(grep 'pid namespace shared' "$dir/sidecar.log")"
  fi
  # The sidecar's own lines (tracing levels).
  warnings=$(grep -E ' (WARN|ERROR) ' "$dir/sidecar.log" || true)
  [ -z "$warnings" ] || die "$variant: the sidecar logged warnings: $warnings"
  # (podman logs an error for each probe it made a healthcheck of and cannot unschedule
  # without systemd: harmless, kept out of the way.)
  podman pod rm -f -t 5 "$pod" > "$dir/pod-rm.log" 2>&1 || { cat "$dir/pod-rm.log" >&2; die "podman pod rm $pod"; }
  say "$variant: ok ($evidence evidence)"
}

play overlays/classic lock
play overlays/shared-pid lock+proc
say "ok: kubernetes check took ${SECONDS}s"
