//! The background task of the server: the lifecycle rounds (liveness, compaction, the
//! stale wipe) and, until the directory has been read, the readiness polling.
//!
//! Rounds run every `--lifecycle.interval`, or at once when the directory watch reports
//! files appearing or vanishing; each holds the pipeline lock, so no merge pass sees a
//! half-done step.

use super::App;
use super::flight::payload_message;
use crate::compact::{Report, Skip, SkipReason};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs one lifecycle round with the pipeline locked, then reports it; returns the
/// evidence in use. A round that fails (an I/O error, or a panic) is logged and counted
/// as a skipped compaction, and the next round retries.
pub(super) async fn run_tick(app: &Arc<App>, at_start: bool) -> &'static str {
    let pipeline = app.flight.pipeline();
    let done = tokio::task::spawn_blocking(move || {
        let mut p = pipeline.lock().unwrap_or_else(|e| e.into_inner());
        let super::Pipeline {
            collector,
            lifecycle,
        } = &mut *p;
        // Dead writers' files are absorbed with what the collector last read from them,
        // and its ghosts with them; then the collector forgets what was absorbed.
        let tick = std::panic::AssertUnwindSafe(|| lifecycle.tick_with(at_start, &*collector));
        let report = std::panic::catch_unwind(tick)
            .map_err(|payload| format!("panic: {}", payload_message(payload)))
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Ok(report) = &report {
            collector.settle(report);
        }
        (report, lifecycle.evidence())
    })
    .await;
    let Ok((report, evidence)) = done else {
        // Cancelled at shutdown.
        return "none";
    };
    let report = report.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "lifecycle round failed; will retry");
        Report {
            skipped: Some(Skip::new(SkipReason::Error, err)),
            // A failed round compacted nothing: what was waiting still waits.
            compactable: app.metrics.compactable(),
            ..Default::default()
        }
    });
    log_round(&report);
    let mode = app.config.lifecycle.liveness.as_str();
    app.metrics.lifecycle(&report, mode, evidence);
    evidence
}

/// One log line per newly proven death (with its evidence) and per action taken.
fn log_round(report: &Report) {
    for death in &report.proven {
        tracing::info!(
            pid = death.pid,
            evidence = death.evidence.as_str(),
            "writer proven dead"
        );
    }
    if report.wiped {
        tracing::info!(
            removed = report.removed,
            "every writer in the directory was dead: cleaned the stale directory"
        );
    } else if report.absorbed > 0 || report.removed > 0 {
        tracing::info!(
            dead = report.dead,
            absorbed = report.absorbed,
            removed = report.removed,
            "compacted dead writers"
        );
    }
    if let Some(skip) = report.skipped.as_ref().filter(|_| !report.skip_repeated) {
        tracing::warn!(
            reason = skip.reason.as_str(),
            "compaction skipped: {}",
            skip.detail
        );
    }
}

/// Runs the lifecycle every `dir_poll` or when the directory changes, and until the
/// directory has been read once, tries to read it and says why not (once per reason).
pub(super) async fn run(app: Arc<App>, mut started: bool) {
    let (wake, mut events) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = None;
    let mut said: Option<String> = None;
    let mut logged_mode = false;
    loop {
        let is_dir = crate::dir::Dir::open(&app.config.dir).is_ok();
        if watcher.is_none() && is_dir {
            watcher = crate::watch::watch(&app.config.dir, wake.clone())
                .map_err(|e| tracing::debug!(error = %e, "no directory watch; the timer alone drives the lifecycle"))
                .ok();
        }
        if is_dir {
            let evidence = run_tick(&app, !started).await;
            started = true;
            if !logged_mode {
                tracing::info!(
                    mode = app.config.lifecycle.liveness.as_str(),
                    evidence,
                    compaction = app.config.lifecycle.compaction,
                    "liveness"
                );
                logged_mode = true;
            }
        }
        if !app.flight.is_ready() {
            poll_readiness(&app, &mut said).await;
        } else {
            said = None;
        }
        tokio::select! {
            () = tokio::time::sleep(app.config.dir_poll) => {}
            Some(()) = events.recv() => {
                // Let a burst of events settle, then handle it in one round.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while events.try_recv().is_ok() {}
            }
        }
    }
}

/// Tries a pass; logs why the directory cannot be read, once for each new reason.
async fn poll_readiness(app: &Arc<App>, said: &mut Option<String>) {
    if app.flight.get(Instant::now()).await.is_err() {
        return;
    }
    match app.flight.unready_reason() {
        None => tracing::info!(dir = %app.config.dir.display(), "directory read; ready"),
        Some(reason) if said.as_deref() != Some(&reason) => {
            tracing::warn!("not ready: {reason}; waiting for the directory to become readable");
            *said = Some(reason);
        }
        Some(_) => {}
    }
}
