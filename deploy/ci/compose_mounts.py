"""Lays out what the compose stack's Prometheus, Alertmanager and Grafana would see, from
the configuration `podman-compose config` prints (on stdin), so that promtool and amtool
check exactly the files the stack mounts, and checks that those are deploy/'s own tested
files, not copies.

    podman-compose -f compose.yaml config | python compose_mounts.py COMPOSE_DIR ROOT

Prints two lines: the path under ROOT of Prometheus' --config.file and of Alertmanager's.
"""

import os
import shutil
import sys

import yaml


def binds(service, compose_dir):
    """(host source, container target) of each bind mount, sources made absolute."""
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        else:
            parts = volume.split(":")
            source, target = parts[0], parts[1]
            if not source.startswith((".", "/")):
                continue  # a named volume
        out.append((os.path.realpath(os.path.join(compose_dir, source)), target))
    return out


def lay_out(mounts, root):
    """Copies each source to ROOT/target, outer mounts first (nested ones win)."""
    for source, target in sorted(mounts, key=lambda m: m[1].count("/")):
        dest = os.path.join(root, target.lstrip("/"))
        if os.path.isdir(source):
            shutil.copytree(source, dest, dirs_exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(source, dest)


def flag(service, name):
    for arg in service.get("command", []):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    sys.exit(f"compose: no {name} in the command of {service.get('image')}")


def expect(mounts, target, source, what):
    got = dict((t, s) for s, t in mounts).get(target)
    if got != os.path.realpath(source):
        sys.exit(f"compose: {what} mounts {got} at {target}, not {source}")


def main():
    compose_dir, root = sys.argv[1], sys.argv[2]
    deploy = os.path.realpath(os.path.join(compose_dir, ".."))
    services = yaml.safe_load(sys.stdin)["services"]
    prometheus = binds(services["prometheus"], compose_dir)
    expect(prometheus, "/etc/prometheus", f"{deploy}/prometheus",
           "prometheus (the rule files and prometheus.yml CI tests)")
    alertmanager = binds(services["alertmanager"], compose_dir)
    expect(alertmanager, "/etc/alertmanager/alertmanager.yml",
           f"{deploy}/prometheus/alertmanager.yml", "alertmanager")
    grafana = binds(services["grafana"], compose_dir)
    expect(grafana, "/var/lib/grafana/dashboards/multiproc-exporter.json",
           f"{deploy}/grafana/multiproc-exporter.json", "grafana")
    url = services["grafana"].get("environment", {}).get("PROMETHEUS_URL", "")
    if not url.startswith("http"):
        sys.exit(f"compose: grafana's PROMETHEUS_URL is {url!r}")
    lay_out(prometheus, os.path.join(root, "prometheus"))
    lay_out(alertmanager, os.path.join(root, "alertmanager"))
    print(os.path.join(root, "prometheus", flag(services["prometheus"], "--config.file").lstrip("/")))
    print(os.path.join(root, "alertmanager", flag(services["alertmanager"], "--config.file").lstrip("/")))


if __name__ == "__main__":
    main()
