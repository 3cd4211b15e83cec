"""Checks of the rendered Kubernetes manifests that kubernetes-validate cannot make:
`python manifests.py DIR`, where DIR holds the output of `kubectl kustomize` for each
variant of deploy/kubernetes as NAME.yaml (base.yaml, classic.yaml, ...); and
`python manifests.py --same-pod RENDERED PLAYED` (see same_pod).

1. Every PodMonitor, ServiceMonitor and PrometheusRule against the Prometheus
   Operator's own schemas, as pydantic models (cloudcoil-models-prometheus-operator,
   generated from the v0.80 CRDs) made strict: an unknown field anywhere fails, as do
   wrong types and values outside a field's pattern or range. kubernetes-validate only
   warns about these kinds, so without this a misspelt field would pass. A self-test
   proves the models strict.
2. What the manifests promise to carry unchanged: each PrometheusRule's `spec` is one
   of the rule files of deploy/prometheus (both are there), and the dashboard ConfigMap
   holds deploy/grafana/multiproc-exporter.json byte for byte.
3. What docs/deployment.md ("Kubernetes") says of the pod in every variant: the
   securityContext, the memory-backed emptyDir, the probes, the port, the resources,
   where the sidecar sits, and how Prometheus finds it; in overlays/tls, the Secret
   volume, the probe port and the PodMonitor's https, tlsConfig and basicAuth, and
   that they fit the example Secrets and web.yml of that overlay (tls_promises).

Run from the repository's root.
"""

import copy
import inspect
import json
import pathlib
import sys
import typing

import pydantic
import yaml
from cloudcoil import apimachinery, resources
from cloudcoil.models.prometheus_operator import v1

KINDS = {"PodMonitor": v1.PodMonitor, "ServiceMonitor": v1.ServiceMonitor,
         "PrometheusRule": v1.PrometheusRule}
RULE_FILES = ["deploy/prometheus/multiproc-exporter.rules.yml",
              "deploy/prometheus/app.rules.yml"]
DASHBOARD = "deploy/grafana/multiproc-exporter.json"
TLS = "deploy/kubernetes/overlays/tls"
# The sidecar's ports: the metrics (behind TLS and basic auth in overlays/tls) and, in
# overlays/tls only, the plain-HTTP probe listener.
PORT, PROBE_PORT = 9867, 9868
WEB_DIR = "/etc/multiproc-exporter/web"


def make_strict():
    """extra='forbid' on every model (the generated ones allow unknown fields). A
    model's schema embeds its fields' schemas as they were when it was built, so each
    model is rebuilt after the models of its fields (depth first)."""
    models = [m for mod in (v1, apimachinery, resources)
              for _, m in inspect.getmembers(mod, inspect.isclass)
              if issubclass(m, pydantic.BaseModel) and m.__module__ == mod.__name__
              and not m.__name__.endswith("Builder") and m is not resources.Unstructured]
    for model in models:
        model.model_config["extra"] = "forbid"
    done = set()

    def nested(annotation):
        if inspect.isclass(annotation) and issubclass(annotation, pydantic.BaseModel):
            yield annotation
        for arg in typing.get_args(annotation):
            yield from nested(arg)

    def rebuild(model):
        if model in done:
            return
        done.add(model)
        for field in model.model_fields.values():
            for child in nested(field.annotation):
                rebuild(child)
        model.model_rebuild(force=True)

    for model in models:
        rebuild(model)


def check(doc):
    KINDS[doc["kind"]].model_validate(doc)


def strictness_selftest(doc):
    """A misspelt field in spec, in its first list item and one level deeper must each
    fail, or the validation is not strict and proves nothing."""
    items, deeper = {"PodMonitor": ("podMetricsEndpoints", "relabelings"),
                     "ServiceMonitor": ("endpoints", "relabelings"),
                     "PrometheusRule": ("groups", "rules")}[doc["kind"]]
    cases = {
        "spec.selectr": lambda d: d["spec"],
        f"spec.{items}[0].intervall": lambda d: d["spec"][items][0],
        f"spec.{items}[0].{deeper}[0].targetLabell": lambda d: d["spec"][items][0][deeper][0],
    }
    for name, where in cases.items():
        bad = copy.deepcopy(doc)
        where(bad)[name.rsplit(".", 1)[1]] = "x"
        try:
            check(bad)
        except pydantic.ValidationError:
            continue
        sys.exit(f"operator_kinds: a {doc['kind']} with the unknown field {name} passed: not strict")


def fail(where, message):
    sys.exit(f"manifests: {where}: {message}")


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def pod_promises(name, docs):
    """The pod spec of variant `name` as docs/deployment.md describes it."""
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    where = f"{name}.yaml"
    native = name != "classic"
    init = pod.get("initContainers", [])
    containers = pod["containers"]
    if native:
        if [c["name"] for c in init] != ["multiproc-exporter"] or init[0].get("restartPolicy") != "Always":
            fail(where, "the sidecar is not the one native sidecar (initContainers, restartPolicy: Always)")
        sidecar = init[0]
    else:
        if init or [c["name"] for c in containers] != ["app", "multiproc-exporter"]:
            fail(where, "the sidecar is not a plain second container")
        sidecar = containers[1]
        if "restartPolicy" in sidecar:
            fail(where, "a plain container with restartPolicy (rejected before 1.29)")
    app = containers[0]
    if app["name"] != "app":
        fail(where, "the first container is not the app")
    if pod.get("shareProcessNamespace", False) != (name == "shared-pid"):
        fail(where, "shareProcessNamespace is set only in overlays/shared-pid")
    want = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"}}
    if pod.get("securityContext") != want:
        fail(where, f"pod securityContext {pod.get('securityContext')}, not {want}")
    (volume,) = [v for v in pod["volumes"] if v["name"] == "metrics"]
    if volume.get("emptyDir", {}).get("medium") != "Memory" or not volume["emptyDir"].get("sizeLimit"):
        fail(where, "the metrics volume is not an emptyDir with medium: Memory and a sizeLimit")
    size = mebibytes(volume["emptyDir"]["sizeLimit"])
    for c in (app, sidecar):
        ctx = c.get("securityContext", {})
        if ctx != {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                   "capabilities": {"drop": ["ALL"]}}:
            fail(where, f"{c['name']}: securityContext {ctx}")
        if "runAsUser" in ctx or "runAsGroup" in ctx:
            fail(where, f"{c['name']}: a UID of its own (app and sidecar share the pod's)")
        if {"name": "metrics", "mountPath": "/run/metrics"} not in c.get("volumeMounts", []):
            fail(where, f"{c['name']}: the metrics volume is not mounted at /run/metrics")
        if {"name": "PROMETHEUS_MULTIPROC_DIR", "value": "/run/metrics"} not in c.get("env", []):
            fail(where, f"{c['name']}: PROMETHEUS_MULTIPROC_DIR is not /run/metrics")
    tls = name == "tls"
    ports = [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}]
    if tls:
        ports.insert(0, {"name": "probe", "containerPort": PROBE_PORT, "protocol": "TCP"})
    if sidecar.get("ports") != ports:
        fail(where, f"the sidecar's ports: {sidecar.get('ports')}")
    probe_port = PROBE_PORT if tls else PORT
    for probe in ("startupProbe", "livenessProbe"):
        if sidecar.get(probe, {}).get("httpGet") != {"path": "/healthz", "port": probe_port}:
            fail(where, f"the sidecar's {probe} is not on /healthz, port {probe_port} (a number)")
    web_env = {e["name"]: e.get("value") for e in sidecar.get("env", [])
               if e["name"] in ("MULTIPROC_EXPORTER_WEB_CONFIG_FILE",
                                "MULTIPROC_EXPORTER_WEB_PROBE_ADDRESS")}
    if web_env != ({"MULTIPROC_EXPORTER_WEB_CONFIG_FILE": f"{WEB_DIR}/web.yml",
                    "MULTIPROC_EXPORTER_WEB_PROBE_ADDRESS": f":{PROBE_PORT}"} if tls else {}):
        fail(where, f"the sidecar's web config and probe address (overlays/tls only): {web_env}")
    web_volumes = [v for v in pod["volumes"] if v["name"] != "metrics"]
    web_mounts = {c["name"]: [m for m in c.get("volumeMounts", []) if m["name"] != "metrics"]
                  for c in (app, sidecar)}
    if tls:
        if web_volumes != [{"name": "web", "secret": {
                "secretName": "multiproc-exporter-web", "defaultMode": 0o440, "optional": False}}]:
            fail(where, f"the web volume is not the Secret multiproc-exporter-web, 0440: {web_volumes}")
        if web_mounts != {"app": [], "multiproc-exporter": [
                {"name": "web", "mountPath": WEB_DIR, "readOnly": True}]}:
            fail(where, f"the web Secret is not mounted read-only at {WEB_DIR} in the sidecar alone: {web_mounts}")
    elif web_volumes or any(web_mounts.values()):
        fail(where, f"volumes other than metrics: {web_volumes}, {web_mounts}")
    readiness = sidecar.get("readinessProbe")
    if name == "readiness":
        if not readiness or readiness.get("httpGet") != {"path": "/readyz", "port": PORT}:
            fail(where, f"no readiness probe on /readyz, port {PORT}")
    elif readiness:
        fail(where, "a readiness probe on the sidecar (only overlays/readiness has one)")
    if sidecar.get("resources") != {"requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"}}:
        fail(where, f"the sidecar's resources are not those of docs/deployment.md: {sidecar.get('resources')}")
    if "--worker-tmp-dir=/dev/shm" not in app.get("args", []):
        fail(where, "the app does not run Gunicorn with --worker-tmp-dir=/dev/shm")
    # tmpfs pages are charged to the writers: the app's limit holds its request and a
    # full volume.
    app_limit = mebibytes(app["resources"]["limits"]["memory"])
    if app_limit < mebibytes(app["resources"]["requests"]["memory"]) + size:
        fail(where, "the app's memory limit does not hold its request plus the volume's sizeLimit")

    monitors = by_kind(docs, "PodMonitor") + by_kind(docs, "ServiceMonitor")
    if len(monitors) != 1:
        fail(where, f"{len(monitors)} monitors")
    (monitor,) = monitors
    if monitor["kind"] == "PodMonitor":
        if name == "servicemonitor":
            fail(where, "the PodMonitor is still there")
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        selected = labels
    else:
        if name != "servicemonitor":
            fail(where, "a ServiceMonitor outside overlays/servicemonitor")
        (service,) = by_kind(docs, "Service")
        if service["spec"]["ports"] != [{"name": "metrics", "port": 9867, "targetPort": 9867,
                                         "protocol": "TCP"}]:
            fail(where, "the Service's targetPort is not the number 9867")
        if not matches(service["spec"]["selector"], labels):
            fail(where, "the Service does not select the pods")
        (endpoint,) = monitor["spec"]["endpoints"]
        selected = service["metadata"]["labels"]
    if not matches(monitor["spec"]["selector"]["matchLabels"], selected):
        fail(where, f"the {monitor['kind']} selects nothing of the variant")
    if endpoint["port"] != "metrics":
        fail(where, "the monitor does not scrape the port named metrics")
    if {"targetLabel": "job", "replacement": "multiproc-exporter"} not in endpoint.get("relabelings", []):
        fail(where, "the monitor does not set job=\"multiproc-exporter\" (the rules select it)")
    scrape = {k: endpoint[k] for k in ("scheme", "tlsConfig", "basicAuth") if k in endpoint}
    if tls:
        tls_promises(where, monitor, scrape, pod)
    elif scrape:
        fail(where, f"the monitor's {sorted(scrape)} (overlays/tls only)")
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            has = doc["metadata"].get("labels", {}).get("release") == "kube-prometheus-stack"
            if has != (name == "kube-prometheus-stack"):
                fail(where, f"{doc['kind']} {doc['metadata']['name']}: the release label")


def tls_promises(where, monitor, scrape, pod):
    """overlays/tls beyond the pod: the PodMonitor's https, tlsConfig (the CA from the
    sidecar's Secret, a serverName) and basicAuth (from a Secret of Prometheus' own);
    the example Secrets (secret.example.yaml) hold every key the pod, web.yml and the
    PodMonitor use, and their web.yml is ./web.yml to the byte; web.yml names the
    Secret's files relative to the mount and has its mutual TLS alternative; and the
    PodMonitor's mutual TLS alternative, commented out in kustomization.yaml, passes
    the operator's schema."""
    want = {"scheme": "https",
            "tlsConfig": {"ca": {"secret": {"name": "multiproc-exporter-web", "key": "ca.crt"}},
                          "serverName": "multiproc-exporter"},
            "basicAuth": {"username": {"name": "multiproc-exporter-scrape", "key": "username"},
                          "password": {"name": "multiproc-exporter-scrape", "key": "password"}}}
    if scrape != want:
        fail(where, f"the PodMonitor's scheme, tlsConfig and basicAuth: {scrape}, not {want}")
    example = f"{TLS}/secret.example.yaml"
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(example)) if d}
    example_keys = {n: list(d.get("stringData", {})) for n, d in secrets.items() if d["kind"] == "Secret"}
    want_keys = {"multiproc-exporter-web": ["web.yml", "tls.crt", "tls.key", "ca.crt"],
                 "multiproc-exporter-scrape": ["username", "password"]}
    if example_keys != want_keys:
        fail(example, f"the Secrets and their keys: {example_keys}, not {want_keys}")
    web = open(f"{TLS}/web.yml").read()
    if secrets["multiproc-exporter-web"]["stringData"]["web.yml"] != web:
        fail(example, f"web.yml is not the text of {TLS}/web.yml")
    config = yaml.safe_load(web)
    files = {k: v for k, v in config["tls_server_config"].items() if k.endswith("_file")}
    if files != {"cert_file": "tls.crt", "key_file": "tls.key"}:
        fail(f"{TLS}/web.yml", f"the files are not the Secret's tls.crt and tls.key: {files}")
    for line in ("  # client_auth_type: RequireAndVerifyClientCert", "  # client_ca_file: ca.crt"):
        if line not in web.splitlines():
            fail(f"{TLS}/web.yml", f"no mutual TLS alternative {line.strip()!r}")
    # Every Secret key that the pod, web.yml (the mTLS alternative too) and the
    # PodMonitor use is in the example Secrets.
    (mounted,) = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
    refs = [(mounted, k) for k in ["web.yml", *files.values(), "ca.crt"]]
    refs.append((scrape["tlsConfig"]["ca"]["secret"]["name"], scrape["tlsConfig"]["ca"]["secret"]["key"]))
    refs += [(r["name"], r["key"]) for r in scrape["basicAuth"].values()]
    for secret, key in refs:
        if key not in example_keys.get(secret, []):
            fail(where, f"the Secret key {secret}/{key} is not in {example}")
    if list(config["basic_auth_users"]) != [secrets["multiproc-exporter-scrape"]["stringData"]["username"]]:
        fail(where, "web.yml's one user is not the scrape Secret's username")
    # The mutual TLS alternative of the PodMonitor, commented out in kustomization.yaml,
    # passes the operator's schema too, with the client's certificate and key from the
    # scrape Secret.
    lines = open(f"{TLS}/kustomization.yaml").read().splitlines()
    start = [i for i, line in enumerate(lines) if line.strip() == "# cert:"]
    if len(start) != 1:
        fail(f"{TLS}/kustomization.yaml", "no one commented tlsConfig.cert (mutual TLS)")
    indent = lines[start[0]].index("#")
    block = []
    for line in lines[start[0]:]:
        if not line.startswith(" " * indent + "# "):
            break
        block.append(line[indent + 2:])
    mtls = yaml.safe_load("\n".join(block))
    want = {"cert": {"secret": {"name": "multiproc-exporter-scrape", "key": "tls.crt"}},
            "keySecret": {"name": "multiproc-exporter-scrape", "key": "tls.key"}}
    if mtls != want:
        fail(f"{TLS}/kustomization.yaml", f"the commented mutual TLS alternative: {mtls}, not {want}")
    monitor = copy.deepcopy(monitor)
    monitor["spec"]["podMetricsEndpoints"][0]["tlsConfig"].update(mtls)
    try:
        check(monitor)
    except pydantic.ValidationError as err:
        fail(f"{TLS}/kustomization.yaml", f"the PodMonitor with mutual TLS:\n{err}")


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def mebibytes(quantity):
    if not quantity.endswith("Mi"):
        sys.exit(f"manifests: {quantity}: quantities here are written in Mi")
    return int(quantity[:-2])


def main():
    make_strict()
    rules = [yaml.safe_load(open(f)) for f in RULE_FILES]
    dashboard = open(DASHBOARD).read()
    tested = set()
    rendered = sorted(pathlib.Path(sys.argv[1]).glob("*.yaml"))
    if not rendered:
        sys.exit(f"manifests: nothing rendered in {sys.argv[1]}")
    for path in rendered:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        where = path.name
        counts = {}
        found_rules = []
        for doc in docs:
            kind = doc["kind"]
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                if kind not in KINDS or doc["apiVersion"] != "monitoring.coreos.com/v1":
                    fail(where, f"no schema here for {doc['apiVersion']} {kind}")
                try:
                    check(doc)
                except pydantic.ValidationError as err:
                    fail(where, f"{kind} {doc['metadata']['name']}:\n{err}")
                if kind not in tested:
                    strictness_selftest(doc)
                    tested.add(kind)
                if kind == "PrometheusRule":
                    if doc["spec"] not in rules:
                        fail(where, f"PrometheusRule {doc['metadata']['name']} is none of {RULE_FILES}")
                    found_rules.append(doc["spec"])
                counts[kind] = counts.get(kind, 0) + 1
            elif kind == "ConfigMap" and doc["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
                if doc.get("data") != {"multiproc-exporter.json": dashboard}:
                    fail(where, f"the dashboard ConfigMap is not {DASHBOARD}")
                counts["dashboard ConfigMap"] = counts.get("dashboard ConfigMap", 0) + 1
        if sorted(json.dumps(r, sort_keys=True) for r in found_rules) != sorted(json.dumps(r, sort_keys=True) for r in rules):
            fail(where, f"the PrometheusRules are not exactly {RULE_FILES}")
        if counts.get("dashboard ConfigMap") != 1:
            fail(where, "no dashboard ConfigMap")
        pod_promises(path.stem, docs)
        print(f"{where}: ok: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())),
              "and the pod spec")


def same_pod(rendered, played):
    """`--same-pod RENDERED PLAYED`: the Deployment that CI runs under podman kube play
    (PLAYED) keeps the variant's (RENDERED) securityContext, volumes, mounts,
    resources and pid namespace; its overlay may only change what kube play needs."""
    def pod(path):
        (d,) = by_kind([x for x in yaml.safe_load_all(open(path)) if x], "Deployment")
        spec = d["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}
        kept = {k: spec.get(k) for k in ("securityContext", "volumes", "shareProcessNamespace")}
        for name, c in sorted(containers.items()):
            kept[name] = {k: c.get(k) for k in ("securityContext", "volumeMounts", "resources")}
        return kept
    want, got = pod(rendered), pod(played)
    if want != got:
        fail(played, f"the pod run by kube play differs from {rendered}: {got} != {want}")


if __name__ == "__main__":
    if sys.argv[1] == "--same-pod":
        same_pod(sys.argv[2], sys.argv[3])
    else:
        main()
