//! Integration tests: the real binary against real prometheus_client writers.
//!
//! One test binary (so the pinned virtualenv is provisioned once per run), one module
//! per area.

/// Provisioning of the Python reference, temp dirs, running the binary.
mod util;

/// Our output against `MultiProcessCollector` on directories written by real workers.
mod differential;

/// Counterparts of the reading and merging cases of prometheus_client's own tests.
mod conformance;

/// Bad files: never a failed render, always a clear report, nothing else lost.
mod bad_input;

/// Flags, environment fallbacks and exit codes.
mod cli;

/// `promtool check metrics` on our output (needs the Debian package `prometheus`).
mod promtool;

/// Number spelling against prometheus_client's `floatToGoString` on a million values.
mod spelling;

/// The committed fixture: golden output.
mod fixtures;

/// The HTTP sidecar.
mod serve;

/// Faults caused by other processes while the sidecar serves.
mod faults;

// Counter files deleted by someone else: ghosts, absorbed or wiped.
mod ghosts;

/// Concurrent scrapes under churn and hostile clients.
mod load;

/// Memory at scale: a million series in one file.
mod memory;

/// The built-in demo pool.
mod demo;

/// What a scrape answers when the directory is unusable or producing it fails.
mod scrape_policy;

/// Our writer's files, read by prometheus_client.
mod writer;

/// A real Prometheus server scraping the sidecar (needs the Debian package `prometheus`).
mod prometheus;

/// `deploy/`: runbooks, promtool and amtool, the dashboard's generator, the app's pins.
mod deploy;

/// Alerts and dashboard against a live pool, sidecar, Prometheus and Alertmanager
/// (needs the Debian packages `prometheus` and `prometheus-alertmanager`).
mod alerts;

/// Docs checked against the binary.
mod docs;

/// The module graph of the crate.
mod layout;

/// Dead workers, compaction, pid reuse, stale directories.
mod lifecycle;

/// Crash safety of compaction.
mod crash;

/// The fault suite of DESIGN section 7: every fault through one checker, each ending
/// with the output `MultiProcessCollector` gives and nothing outside the directory touched.
mod fault_suite;

/// The self-metric of dead writers' files compaction could still absorb.
mod compactable;

/// Helpers of the lifecycle and crash tests.
mod pool;

/// The Python shim.
mod shim;

/// Real Gunicorn and uWSGI pools with the shim and the sidecar.
mod pools;

/// docs/migration.md, followed step by step.
mod migration;

/// The benchmark generators of `benches/` cannot drift apart (issue 11).
mod bench_shape;

/// `--web.config.file`: TLS, mutual TLS, basic auth, rotation, with curl and openssl
/// (issue 12).
mod web;
