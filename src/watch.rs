//! Tells the lifecycle task when files appear in or vanish from the directory.
//!
//! inotify does not report stores through a mapping, and a worker's death makes no file
//! event at all, so events are hints, never the source of truth: every scrape re-lists
//! the directory (a readdir of a thousand names costs a fraction of a millisecond) and the
//! lifecycle also runs on a timer. Events only make it react at once, for example to
//! `mark_process_dead` deletions or to a new worker's files. A lost event, a queue
//! overflow or a watcher that cannot be created costs freshness, never correctness.

use notify::{RecursiveMode, Watcher};
use std::path::Path;
use tokio::sync::mpsc;

/// A live watch; dropping it stops watching.
pub struct DirWatch {
    _watcher: notify::RecommendedWatcher,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirWatch")
    }
}

/// Watches `dir` (not recursively); every create, remove or rename event, and every
/// watcher error (such as a queue overflow), sends one `()` on `wake`.
///
/// # Errors
/// When the watch cannot be set up (the directory does not exist, inotify limits).
pub fn watch(dir: &Path, wake: mpsc::UnboundedSender<()>) -> notify::Result<DirWatch> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => matches!(
                e.kind,
                notify::EventKind::Create(_)
                    | notify::EventKind::Remove(_)
                    | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
            ),
            Err(_) => true,
        };
        if relevant {
            let _ = wake.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(DirWatch { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_created_and_removed_files() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _w = watch(dir.path(), tx).unwrap();
        let f = dir.path().join("counter_1.db");
        std::fs::write(&f, b"").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        while rx.try_recv().is_ok() {}
        std::fs::remove_file(&f).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert!(watch(&dir.path().join("missing"), mpsc::unbounded_channel().0).is_err());
    }
}
