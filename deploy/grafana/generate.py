#!/usr/bin/env python3
"""Generates the Grafana dashboard of multiproc-exporter: the sidecar, the pool's
directory, and the application's golden signals, all from the one scrape of the sidecar.

    pip install -r requirements.txt
    python generate.py > multiproc-exporter.json

The JSON is committed next to this file; a test regenerates it and fails if the two
differ, and the live alert test runs every query below against a real Prometheus.
Built with Grafana's own models (grafana-foundation-sdk), and read back through them.

Queries use the variables `$job` and `$instance` (regular expressions: every selector
uses `=~`) and Grafana's `$__rate_interval`.
"""

import json
import sys

from grafana_foundation_sdk.builders import common as parts
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

UID = "multiproc-exporter"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"


def query(expr, legend, ref):
    return (
        prom.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .datasource(DATASOURCE)
    )


def with_queries(panel, queries):
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + i)))
    return panel


def graph(title, description, unit, queries, span=8, stack=False):
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(8)
        .fill_opacity(10)
        .legend(
            parts.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if stack:
        panel = panel.stacking(parts.StackingConfig().mode(common.StackingMode.NORMAL))
    return with_queries(panel, queries)


def single(title, description, unit, queries, span=4, mappings=None):
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(span)
        .height(4)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(parts.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if mappings:
        panel = panel.mappings(mappings)
    return with_queries(panel, queries)


def up_down(one, zero):
    """Value mappings 1 -> `one` (green), 0 -> `zero` (red)."""
    return [
        model.ValueMap(
            options={
                "1": model.ValueMappingResult(text=one, color="green", index=0),
                "0": model.ValueMappingResult(text=zero, color="red", index=1),
            },
        )
    ]


def variables():
    datasource = (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
    )
    job = (
        dash.QueryVariable("job")
        .label("Job")
        .datasource(DATASOURCE)
        .query("label_values(multiproc_exporter_build_info, job)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".+")
        .multi(True)
    )
    instance = (
        dash.QueryVariable("instance")
        .label("Instance")
        .datasource(DATASOURCE)
        .query('label_values(multiproc_exporter_build_info{job=~"$job"}, instance)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".+")
        .multi(True)
    )
    return [datasource, job, instance]


def sidecar_row(d):
    d = d.with_row(dash.Row("Sidecar"))
    d = d.with_panel(single(
        "Up", "Whether Prometheus reaches the sidecar (when it does not, the pool's "
        "metrics are missing too).", "none",
        [(f"up{{{SEL}}}", "{{instance}}")], mappings=up_down("up", "down")))
    d = d.with_panel(single(
        "Directory ready", "multiproc_exporter_ready: the directory exists and was read "
        "in full.", "none",
        [(f"multiproc_exporter_ready{{{SEL}}}", "{{instance}}")],
        mappings=up_down("ready", "not ready")))
    d = d.with_panel(single(
        "Merged series", "Series served from the directory, and samples Prometheus "
        "took from the whole scrape.", "short",
        [(f"sum(multiproc_exporter_series{{{SEL}}})", "series"),
         (f"sum(scrape_samples_scraped{{{SEL}}})", "samples scraped")]))
    d = d.with_panel(single(
        "Liveness", "The --liveness mode and the evidence in use (lock, proc, lock+proc, "
        "none).", "none",
        [(f"multiproc_exporter_liveness_info{{{SEL}}}", "{{mode}} / {{evidence}}")],
        span=6))
    d = d.with_panel(single(
        "Version", "multiproc_exporter_build_info.", "none",
        [(f"multiproc_exporter_build_info{{{SEL}}}", "{{version}}")], span=6))
    d = d.with_panel(graph(
        "Scrape and merge duration", "Prometheus' scrape duration of the sidecar, and "
        "the sidecar's time to list, read and merge the directory (quantiles of "
        "multiproc_exporter_merge_duration_seconds).", "s",
        [(f"scrape_duration_seconds{{{SEL}}}", "scrape {{instance}}"),
         ("histogram_quantile(0.5, sum by (instance, le) (rate("
          f"multiproc_exporter_merge_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
          "merge p50 {{instance}}"),
         ("histogram_quantile(0.99, sum by (instance, le) (rate("
          f"multiproc_exporter_merge_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
          "merge p99 {{instance}}")]))
    d = d.with_panel(graph(
        "Scrapes and merges", "Requests to the telemetry path and merge passes "
        "(concurrent scrapes share a pass).", "reqps",
        [(f"sum by (instance) (rate(multiproc_exporter_scrapes_total{{{SEL}}}[{RATE}]))",
          "scrapes {{instance}}"),
         (f"sum by (instance) (rate(multiproc_exporter_merges_total{{{SEL}}}[{RATE}]))",
          "merges {{instance}}")]))
    d = d.with_panel(graph(
        "Scrape problems", "Scrapes answered from an older pass because of their timeout, "
        "scrapes answered 500 by stage, passes that could not list the directory, and "
        "connections rejected or reset.", "short",
        [(f"sum by (instance) (increase(multiproc_exporter_scrape_timeouts_total{{{SEL}}}[{RATE}]))",
          "timeouts {{instance}}"),
         (f"sum by (instance, stage) (increase(multiproc_exporter_scrape_failures_total{{{SEL}}}[{RATE}]))",
          "failed ({{stage}}) {{instance}}"),
         (f"sum by (instance) (increase(multiproc_exporter_merge_failures_total{{{SEL}}}[{RATE}]))",
          "unlistable {{instance}}"),
         (f"sum by (instance) (increase(multiproc_exporter_connections_rejected_total{{{SEL}}}[{RATE}]))",
          "rejected {{instance}}"),
         (f"sum by (instance) (increase(multiproc_exporter_write_timeouts_total{{{SEL}}}[{RATE}]))",
          "write timeouts {{instance}}")]))
    d = d.with_panel(graph(
        "Sidecar memory", "Resident memory of the sidecar process.", "bytes",
        [(f"multiproc_exporter_process_resident_memory_bytes{{{SEL}}}", "{{instance}}")],
        span=12))
    d = d.with_panel(graph(
        "Sidecar CPU", "CPU time of the sidecar process, per second.", "percentunit",
        [(f"rate(multiproc_exporter_process_cpu_seconds_total{{{SEL}}}[{RATE}])",
          "{{instance}}")], span=12))
    return d


def pool_row(d):
    d = d.with_row(dash.Row("Pool and directory"))
    d = d.with_panel(graph(
        "Files by kind", "Files merged in the latest pass, by kind.", "short",
        [(f"sum by (kind) (multiproc_exporter_files{{{SEL}}})", "{{kind}}")], stack=True))
    d = d.with_panel(graph(
        "Writers", "Writer pids at the last lifecycle round: alive, dead (their gauge_all "
        "files stay by design), unknown (no evidence, treated as alive).", "short",
        [(f"sum by (state) (multiproc_exporter_writers{{{SEL}}})", "{{state}}")],
        stack=True))
    d = d.with_panel(graph(
        "Compactable files", "Dead writers' files compaction could still absorb: 0 "
        "after every successful round; above 0 while compaction is skipped or off.",
        "short",
        [(f"sum by (instance) (multiproc_exporter_compactable_files{{{SEL}}})",
          "{{instance}}")]))
    d = d.with_panel(graph(
        "Compactions", "Rounds that folded files into archives, dead writers' files "
        "absorbed, files removed, and stale directories cleaned at start.", "short",
        [(f"sum(increase(multiproc_exporter_compactions_total{{{SEL}}}[{RATE}]))",
          "compactions"),
         (f"sum(increase(multiproc_exporter_files_absorbed_total{{{SEL}}}[{RATE}]))",
          "files absorbed"),
         (f"sum(increase(multiproc_exporter_files_removed_total{{{SEL}}}[{RATE}]))",
          "files removed"),
         (f"sum(increase(multiproc_exporter_stale_wipes_total{{{SEL}}}[{RATE}]))",
          "stale wipes")]))
    d = d.with_panel(graph(
        "Compaction skipped", "Rounds that could not compact, by reason (no_space: the "
        "volume is nearly full).", "short",
        [(f"sum by (reason) (increase(multiproc_exporter_compaction_skipped_total{{{SEL}}}[{RATE}]))",
          "{{reason}}")]))
    d = d.with_panel(graph(
        "Writers proven dead", "Worker deaths by the evidence that proved them.", "short",
        [(f"sum by (evidence) (increase(multiproc_exporter_writers_proven_dead_total{{{SEL}}}[{RATE}]))",
          "{{evidence}}")]))
    d = d.with_panel(graph(
        "Bad files", "Files with a problem in the latest pass, by reason (each is logged "
        "with its path).", "short",
        # Only the reasons that have files, and the total (0 on a healthy pool).
        [(f"sum by (reason) (multiproc_exporter_bad_files{{{SEL}}}) > 0 or "
          f'label_replace(sum(multiproc_exporter_bad_files{{{SEL}}}), "reason", "total", "", "")',
          "{{reason}}")], span=12))
    d = d.with_panel(graph(
        "Series per family (top 10)", "Merged series per metric family: cardinality is "
        "what hurts Prometheus.", "short",
        [(f"topk(10, max by (family) (multiproc_exporter_family_series{{{SEL}}}))",
          "{{family}}")], span=12))
    return d


def app_row(d):
    app = f"http_requests_total{{{SEL}}}"
    errors = f'http_requests_total{{{SEL}, status=~"5.."}}'
    buckets = f"http_request_duration_seconds_bucket{{{SEL}}}"
    d = d.with_row(dash.Row("Application (golden signals, through the sidecar)"))
    d = d.with_panel(graph(
        "Traffic by status", "Requests per second, by status.", "reqps",
        [(f"sum by (status) (rate({app}[{RATE}]))", "{{status}}")], stack=True))
    d = d.with_panel(graph(
        "Error ratio", "Share of requests answered 5xx (the example alert fires above "
        "5% for 5 minutes).", "percentunit",
        [(f"sum(rate({errors}[{RATE}])) / sum(rate({app}[{RATE}]))", "5xx ratio")]))
    d = d.with_panel(graph(
        "Latency", "Request duration quantiles over all routes (the example alert fires "
        "when p95 stays above 1 s for 10 minutes).", "s",
        [(f"histogram_quantile({q}, sum by (le) (rate({buckets}[{RATE}])))", f"p{p}")
         for q, p in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))]))
    d = d.with_panel(graph(
        "Traffic by route", "Requests per second, by route and method.", "reqps",
        [(f"sum by (route, method) (rate({app}[{RATE}]))", "{{method}} {{route}}")],
        span=12))
    d = d.with_panel(graph(
        "p95 latency by route", "95th percentile of the request duration, per route.",
        "s",
        [(f"histogram_quantile(0.95, sum by (route, le) (rate({buckets}[{RATE}])))",
          "{{route}}")], span=12))
    return d


def build():
    d = (
        dash.Dashboard("multiproc-exporter")
        .uid(UID)
        .description("The multiproc-exporter sidecar, its pool's directory, and the "
                     "application's golden signals, from one scrape of the sidecar.")
        .tags(["multiproc-exporter", "prometheus_client", "gunicorn"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
    )
    for v in variables():
        d = d.with_variable(v)
    d = app_row(pool_row(sidecar_row(d))).build()
    # Stable panel ids, in layout order (Grafana would assign them on import).
    for i, panel in enumerate(d.panels, start=1):
        panel.id_val = i
    return d


def render():
    text = json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    # Read back through Grafana's models: what they cannot represent would be lost.
    again = model.Dashboard.from_json(json.loads(text))
    if json.dumps(again, cls=JSONEncoder, indent=2, sort_keys=True) + "\n" != text:
        raise SystemExit("the dashboard does not survive Grafana's models")
    return text


if __name__ == "__main__":
    sys.stdout.write(render())
