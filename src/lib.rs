//! multiproc-exporter: one aggregated `/metrics` for a pre-fork worker pool.
//!
//! Workers write Prometheus samples into per-process memory-mapped `.db` files through
//! prometheus_client's multiprocess mode. This crate reads that directory and merges the
//! files exactly as prometheus_client's `MultiProcessCollector` does, without its
//! failure modes: a bad file is isolated and reported, never fatal.
//!
//! # Layout
//!
//! The module list is the architecture. The pipeline stages, data flowing down:
//!
//! - [`scan`]: list the directory, read file names (type, gauge mode, pid).
//! - [`read`]: bring `[0, min(used, size))` of a file into memory, safely.
//! - [`parse`]: frame entries, decode keys once, index value offsets incrementally.
//! - [`merge`]: combine files per type and gauge mode into families.
//! - [`render`]: write text 0.0.4 / 1.0.0 or OpenMetrics 1.0.0, with our own escaping
//!   and number spelling.
//! - [`serve`]: HTTP: content negotiation, single-flight merges, gzip (one member,
//!   deflated on two threads for a large body), graceful shutdown.
//!
//! One home per concept, used by the stages:
//!
//! - [`model`]: the vocabulary (file kinds, gauge modes, families with their layouts and
//!   samples, label sets, file problems); depends on nothing else in the crate.
//! - [`format`](mod@format): prometheus_client's file format (header, entry layout, key encoding):
//!   read by `read` and `parse`, written by [`write`](mod@write) and compaction.
//! - [`fold`]: how values of one series combine (sum, min, max, last, most recent, the
//!   exact sum): used by the merge plan and by compaction's archives.
//! - [`procfs`]: `/proc`, for liveness and the self-metrics.
//! - [`dir`]: the directory held open; every file operation relative to it, and file
//!   identity (device, inode, birth time).
//! - [`selfmetrics`]: the table of the sidecar's own metrics.
//! - [`parallel`]: the second thread of a scrape's CPU-bound parts (the steady reload,
//!   the render), and how many threads the process may use.
//! - [`web`]: `--web.config.file` (exporter-toolkit's schema): TLS as a rustls
//!   configuration, client-certificate verifiers, basic auth against bcrypt hashes, the
//!   rate limit, and reloading when the files change.
//!
//! The lifecycle: [`liveness`] proves which writers are dead, [`compact`] folds their
//! files into archives and cleans stale directories, [`watch`] reports files appearing
//! and vanishing. [`collect`] drives one pass of the pipeline over a directory and keeps
//! the incremental state between passes; [`config`] turns flags and environment into
//! validated settings; [`demo`] runs a simulated worker pool; [`healthcheck`] is the
//! client of `multiproc-exporter healthcheck` (one GET of `/healthz`); [`testpoint`]
//! holds the fault injection points of the crash tests.
//!
//! Dependencies point one way (`tests/it/layout.rs` checks it): `model`, `format`,
//! `dir`, `procfs`, `parallel`, `healthcheck` and `web` depend on nothing; `fold` on
//! `model`; the stages on those; `render` on `model` (and `parallel`) only; `serve` on
//! everything it drives.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod collect;
pub mod compact;
pub mod config;
pub mod demo;
pub mod dir;
pub mod fold;
pub mod format;
pub mod healthcheck;
pub mod liveness;
pub mod merge;
pub mod model;
pub mod parallel;
pub mod parse;
pub mod procfs;
pub mod read;
pub mod render;
pub mod scan;
pub mod selfmetrics;
pub mod serve;
pub mod testpoint;
pub mod watch;
pub mod web;
pub mod write;
