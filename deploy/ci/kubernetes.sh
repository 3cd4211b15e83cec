#!/usr/bin/env bash
# Issue 10, acceptance 2: the manifests of deploy/kubernetes/.
#   1. base/prometheusrules.yaml is what deploy/kubernetes/generate makes of the rule
#      files of deploy/prometheus;
#   2. the base and every overlay render with `kubectl kustomize` and pass
#      `kubernetes-validate --strict` at Kubernetes 1.29 and 1.37 (so do the example
#      Secrets of overlays/tls), printing no warning but the one about the
#      operator's kinds; the base (a native sidecar) fails at
#      1.27 on the init container's restartPolicy, the classic overlay passes there;
#   3. PodMonitor, ServiceMonitor and PrometheusRule pass the operator's schemas made
#      strict, the rules and the dashboard are the files of deploy/prometheus and
#      deploy/grafana, and the pod spec keeps what docs/deployment.md says of it
#      (deploy/ci/manifests.py), overlays/tls's PodMonitor, Secret volume and probe
#      port included;
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
#      evidence must be lock+proc;
#   5. and with the tls overlay (issue 12), on certificates made here with openssl (a
#      CA, a server certificate for IP:127.0.0.1, DNS:localhost and the PodMonitor's
#      serverName) and a password hashed with htpasswd: the overlay's web.yml as
#      committed is refused by --web.config.check (its hash is a placeholder), filled
#      in it passes, and so does its mutual TLS alternative; the Secret made with the
#      `kubectl create secret generic --from-file` of docs/deployment.md is mounted
#      through kube play; the probes use the plain-HTTP probe port, which answers
#      /healthz and /readyz and nothing else; /metrics answers 200 over https with the
#      password, verified against the CA under the serverName as the PodMonitor has
#      it, 401 without it or with a wrong one, and plain HTTP gets no metrics; then
#      the checks of 4 over https (lock evidence).
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
  overlays/readiness overlays/kube-prometheus-stack overlays/tls)
# The Secret overlays/tls mounts into the sidecar, and where (the overlay's names).
WEB_SECRET=multiproc-exporter-web
WEB_DIR=/etc/multiproc-exporter/web
# The UID/GID the manifests run both containers as.
UID_GID=1000

command -v kubectl >/dev/null || die "kubectl (with kustomize) is needed"
need_podman
need_commands openssl:openssl htpasswd:apache2-utils
mkdir -p "$DEPLOY_CACHE"
work=$(mktemp -d "$PWD/$DEPLOY_CACHE/kubernetes-run.XXXXXX")
sidecar_image=localhost/multiproc-exporter:ci-k8s-$$
app_image=localhost/multiproc-exporter-example-app:ci-k8s-$$
pods=()
# Set once the podman secret (and the volume kube play makes of it) is ours to remove.
web_secret_made=""
cleanup() {
  if [ -n "${DEPLOY_CI_KEEP:-}" ]; then
    say "kept (DEPLOY_CI_KEEP): pods ${pods[*]:-none}, images, ${web_secret_made:+the secret and volume $WEB_SECRET, }$work (CONTAINERS_CONF=$work/containers.conf)"
    return
  fi
  local pod
  for pod in "${pods[@]}"; do podman pod rm -f -t 0 "$pod" >/dev/null 2>&1 || true; done
  if [ -n "$web_secret_made" ]; then
    podman volume rm -f "$WEB_SECRET" >/dev/null 2>&1 || true
    podman secret rm "$WEB_SECRET" >/dev/null 2>&1 || true
  fi
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
  for f in "$work"/rendered/*.yaml deploy/kubernetes/overlays/tls/secret.example.yaml; do
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

# A loopback port that was free a moment ago and is none of $@.
other_port() {
  local p
  p=$(free_port)
  while [[ " $* " == *" $p "* ]]; do p=$(free_port); done
  echo "$p"
}

# --web.config.check in the sidecar's image on directory $1, mounted where the pod
# has the Secret, as the pod's UID; prints what it says and fails as it does.
web_check() {
  podman run --rm --network=none --read-only --user "$UID_GID:$UID_GID" \
    -v "$1:$WEB_DIR:ro" "$sidecar_image" \
    --web.config.check --web.config.file="$WEB_DIR/web.yml" 2>&1
}

# The Secret of overlays/tls for a run in directory $1, whose PodMonitor verifies the
# serverName $2: a CA made here (its key stays out of the Secret), a server
# certificate for 127.0.0.1, localhost and $2, and the overlay's web.yml with the
# bcrypt hash of a fresh password (written to $1/password), as files in $1/web, then
# as $1/secret.yaml, made as docs/deployment.md says. The web.yml is checked in the
# image first: as committed (refused, its hash being a placeholder), filled in, and
# with its mutual TLS alternative uncommented.
tls_secret() {
  local dir=$1 server_name=$2 web=$1/web password hash out
  mkdir "$web" "$dir/mtls"
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
      -subj /CN=multiproc-exporter-ci-ca -keyout "$dir/ca.key" -out "$web/ca.crt" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$server_name" \
      -keyout "$web/tls.key" -out "$dir/tls.csr" &&
    printf 'subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:%s\nextendedKeyUsage = serverAuth\n' \
      "$server_name" > "$dir/tls.ext" &&
    openssl x509 -req -in "$dir/tls.csr" -CA "$web/ca.crt" -CAkey "$dir/ca.key" -days 1 \
      -extfile "$dir/tls.ext" -out "$web/tls.crt"
  } > "$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; die "openssl failed"; }
  cp deploy/kubernetes/overlays/tls/web.yml "$web/web.yml"
  # For the check's UID (kube play copies the files into a volume of its own).
  chmod a+r "$web"/*
  if out=$(web_check "$web"); then
    die "overlays/tls/web.yml as committed passed --web.config.check: $out"
  fi
  echo "$out" | grep -q 'basic_auth_users\.prometheus' \
    || die "overlays/tls/web.yml as committed is refused for another reason than its placeholder hash: $out"
  password=$(openssl rand -hex 16)
  echo "$password" > "$dir/password"
  hash=$(printf '%s' "$password" | htpasswd -niBC 10 "" | tr -d ':\n')
  sed -i "s|^  prometheus: REPLACE-with-a-bcrypt-hash\$|  prometheus: $hash|" "$web/web.yml"
  grep -qxF "  prometheus: $hash" "$web/web.yml" || die "overlays/tls/web.yml: no placeholder hash to replace"
  out=$(web_check "$web") || die "overlays/tls/web.yml with a hash: $out"
  say "web.yml: $out"
  cp "$web"/* "$dir/mtls/"
  sed -i 's/^  # \(client_auth_type\|client_ca_file\): /  \1: /' "$dir/mtls/web.yml"
  [ "$(grep -cE '^  (client_auth_type|client_ca_file): ' "$dir/mtls/web.yml")" = 2 ] \
    || die "overlays/tls/web.yml: no commented client_auth_type and client_ca_file"
  out=$(web_check "$dir/mtls") || die "overlays/tls/web.yml with mutual TLS: $out"
  echo "$out" | grep -q RequireAndVerifyClientCert || die "overlays/tls/web.yml with mutual TLS: $out"
  kubectl create secret generic "$WEB_SECRET" --dry-run=client -o yaml \
    --from-file=web.yml="$web/web.yml" --from-file=tls.crt="$web/tls.crt" \
    --from-file=tls.key="$web/tls.key" --from-file=ca.crt="$web/ca.crt" > "$dir/secret.yaml"
}

# Runs variant $1 (an overlay) under podman kube play and checks it; $2 is the
# liveness evidence the sidecar must report; $3, if given, is `tls`: the variant
# serves behind TLS and basic auth, with probes on a plain-HTTP probe port, and gets
# the Secret of tls_secret. A variant with a native sidecar gets
# components/plain-sidecar, as overlays/classic has it.
play() {
  local variant=$1 evidence=$2 tls=${3:-} name dir port app_port probe_port url health app pod
  local components="" probe_env="" server_name="" warnings code scrape=()
  name=gunicorn-app-ci-$$-${variant##*/}
  dir=$work/play-${variant##*/}
  port=$(free_port)
  app_port=$(other_port "$port")
  probe_port=$port
  mkdir "$dir"
  grep -q '^ *restartPolicy: Always$' "$work/rendered/${variant##*/}.yaml" \
    && components="components: [$(realpath --relative-to="$dir" deploy/kubernetes/components/plain-sidecar)]"
  if [ -n "$tls" ]; then
    probe_port=$(other_port "$port" "$app_port")
    probe_env="
                  - name: MULTIPROC_EXPORTER_WEB_PROBE_ADDRESS
                    value: \"127.0.0.1:$probe_port\""
  fi
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
                    value: "127.0.0.1:$port"$probe_env
                ports: null
                startupProbe: {httpGet: {port: $probe_port}}
                livenessProbe: {httpGet: {port: $probe_port}}
KUST
  kubectl kustomize "$dir" > "$dir/all.yaml" || die "kubectl kustomize of the CI overlay failed"
  # kube play gets the Deployment alone (it knows no PodMonitor).
  "$python" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment"]
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)' "$dir/all.yaml" > "$dir/pod.yaml"
  "$python" deploy/ci/manifests.py --same-pod "$work/rendered/${variant##*/}.yaml" "$dir/pod.yaml"

  if [ -n "$tls" ]; then
    # The name Prometheus checks the certificate against, as the PodMonitor has it.
    server_name=$("$python" -c 'import sys, yaml
(m,) = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PodMonitor"]
print(m["spec"]["podMetricsEndpoints"][0]["tlsConfig"]["serverName"])' "$work/rendered/${variant##*/}.yaml")
    say "$variant: certificates for 127.0.0.1 and $server_name, a password, web.yml checked, the Secret $WEB_SECRET"
    tls_secret "$dir" "$server_name"
    scrape=(--cacert "$dir/web/ca.crt" -u "prometheus:$(cat "$dir/password")")
    # A podman secret holding the Secret's YAML is what kube play mounts for a secret
    # volume. Podman 4.3 writes the data into the volume still base64-encoded and
    # ignores stringData (containers/podman#16625, fixed in 4.4): there it gets the
    # values decoded, in data.
    case $(podman version --format '{{.Client.Version}}') in
      4.3.*) "$python" -c 'import base64, sys, yaml
s = yaml.safe_load(open(sys.argv[1]))
s["data"] = {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
yaml.safe_dump(s, sys.stdout)' "$dir/secret.yaml" > "$dir/podman-secret.yaml" ;;
      *) cp "$dir/secret.yaml" "$dir/podman-secret.yaml" ;;
    esac
    if podman secret inspect "$WEB_SECRET" >/dev/null 2>&1 || podman volume inspect "$WEB_SECRET" >/dev/null 2>&1; then
      die "a podman secret or volume $WEB_SECRET is there already (a kept run? podman secret rm $WEB_SECRET; podman volume rm $WEB_SECRET)"
    fi
    web_secret_made=1
    podman secret create "$WEB_SECRET" "$dir/podman-secret.yaml" > "$dir/secret-create.log" 2>&1 \
      || { cat "$dir/secret-create.log" >&2; die "podman secret create $WEB_SECRET failed"; }
  fi

  say "$variant: podman kube play (app on 127.0.0.1:$app_port, sidecar on 127.0.0.1:$port${tls:+, probes on 127.0.0.1:$probe_port})"
  # kube play names the pod of a Deployment after it, with a replica index.
  pod=$name-pod-0
  pods+=("$pod")
  # From the run directory: kube play builds an image from a directory named like it.
  (cd "$dir" && podman kube play --build=false pod.yaml > kube-play.log 2>&1) \
    || { cat "$dir/kube-play.log" >&2; die "podman kube play failed"; }
  local app_ctr=$pod-app sidecar_ctr=$pod-multiproc-exporter
  url=http${tls:+s}://127.0.0.1:$port
  health=http://127.0.0.1:$probe_port
  app=http://127.0.0.1:$app_port
  logs() { podman logs "$app_ctr" >&2 || true; podman logs "$sidecar_ctr" >&2 || true; }
  wait_http "$health/healthz" 30 || { logs; die "$variant: /healthz of the sidecar did not answer"; }
  wait_http "$app/healthz" 30 || { logs; die "$variant: the app does not answer"; }
  wait_http "$health/readyz" 30 || { logs; die "$variant: /readyz did not answer 200"; }

  if [ -n "$tls" ]; then
    say "$variant: https /metrics with the password 200 (CA, serverName), 401 without; probe port plain HTTP, probes only"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "${scrape[@]}" \
      --connect-to "$server_name:$port:127.0.0.1:$port" "https://$server_name:$port/metrics" || true)
    [ "$code" = 200 ] || { logs; die "$variant: https://$server_name:$port/metrics with the password: $code"; }
    code=$(curl -sS -D "$dir/unauthorized.txt" -o /dev/null -w '%{http_code}' \
      --cacert "$dir/web/ca.crt" "$url/metrics" || true)
    [ "$code" = 401 ] || die "$variant: $url/metrics without the password: $code, not 401"
    grep -qi '^www-authenticate: Basic ' "$dir/unauthorized.txt" || die "$variant: a 401 without WWW-Authenticate: Basic"
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$dir/web/ca.crt" \
      -u "prometheus:not-$(cat "$dir/password")" "$url/metrics" || true)
    [ "$code" = 401 ] || die "$variant: $url/metrics with a wrong password: $code, not 401"
    # The main port's health checks are behind the password too: why probes moved.
    code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$dir/web/ca.crt" "$url/healthz" || true)
    [ "$code" = 401 ] || die "$variant: $url/healthz without the password: $code, not 401"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics" 2>/dev/null || true)
    [ "$code" != 200 ] || die "$variant: plain HTTP on the TLS port served /metrics"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$health/metrics" || true)
    [ "$code" = 404 ] || die "$variant: $health/metrics (the probe port): $code, not 404"
  fi

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
  curl -fsS "${scrape[@]}" "$url/metrics" > "$dir/metrics.txt"
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
  wait_absorbed "$url/metrics" "$dir/metrics.txt" "${scrape[@]}" \
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
play overlays/tls lock tls
say "ok: kubernetes check took ${SECONDS}s"
