//! multiproc-exporter: one aggregated `/metrics` for a pre-fork worker pool.
//!
//! Workers write Prometheus samples into per-process memory-mapped `.db` files through
//! prometheus_client's multiprocess mode. This crate reads that directory and merges the
//! files exactly as prometheus_client's `MultiProcessCollector` does, without its
//! failure modes: a bad file is isolated and reported, never fatal.
//!
//! # Layout
//!
//! The module list is the architecture; data flows down the pipeline:
//!
//! - [`scan`]: list the directory, read file names (type, gauge mode, pid).
//! - [`read`]: bring `[0, min(used, size))` of a file into memory, safely.
//! - [`parse`]: frame entries, decode keys once, index value offsets incrementally.
//! - [`merge`]: combine files per type and gauge mode into families.
//! - [`render`]: write text 0.0.4 or OpenMetrics 1.0.0, with our own escaping and
//!   number spelling.
//! - [`serve`]: HTTP: content negotiation, single-flight merges, graceful shutdown.
//!
//! Beside them: [`liveness`] proves which writers are dead, [`compact`] folds their
//! files into archives and cleans stale directories, [`watch`] reports files appearing
//! and vanishing, [`selfmetrics`] declares the sidecar's own metrics, [`demo`] runs a
//! simulated worker pool, [`collect`] drives one pass of the pipeline over a directory and keeps
//! the incremental state between passes; [`config`] reads flags and environment;
//! [`write`](mod@write) produces files in prometheus_client's
//! format; [`model`] and [`error`] hold the shared vocabulary.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod collect;
pub mod compact;
pub mod config;
pub mod demo;
pub mod error;
pub mod liveness;
pub mod merge;
pub mod model;
pub mod parse;
pub mod read;
pub mod render;
pub mod scan;
pub mod selfmetrics;
pub mod serve;
pub mod watch;
pub mod write;
