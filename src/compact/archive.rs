//! Archive files: where dead writers' counts go, in prometheus_client's own format.
//!
//! An archive is `<kind>_archive.db` (`counter_archive.db`, `gauge_max_archive.db`, ...):
//! a normal file that prometheus_client's collector and our reader merge like any other.
//! Folding a dead writer's file into it must not change the merged result, so the fold
//! applies the merge rule of the kind: sums for counters, histograms (non-cumulative
//! buckets), summaries and `sum` gauges (exact, then rounded toward +inf so a counter can
//! never come out lower than before), min/max for those gauges, the newest timestamp for
//! `mostrecent`.
//!
//! Crash safety: a dead file is first renamed to a hidden name (so a new process that
//! gets the same pid starts a fresh file instead of resuming it), the new archive is
//! written to a temporary file, synced and renamed over the old one, and only then is the
//! hidden file deleted. The new archive records, after `used` (where no reader looks),
//! which hidden files it absorbed. After a crash, a hidden file the archive lists is
//! deleted, one it does not list is absorbed again: nothing lost, nothing counted twice.

use super::hook;
use crate::merge::sum::ExactSum;
use crate::model::{FileKind, GaugeMode, GaugeRule};
use crate::parse::{self, HEADER_LEN, VALUE_LEN};
use crate::read::{self, FileId};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Prefix of a dead file renamed for absorption.
pub const ABSORBING_PREFIX: &str = ".mpe-absorbing.";
/// Prefix of an archive being written.
pub const TEMP_PREFIX: &str = ".mpe-tmp.";
/// The pid part of archive names.
pub const ARCHIVE_PID: &str = "archive";
const RECORD_MAGIC: &[u8] = b"\nMPE-ABSORBED-v1\n";

/// The archive a file of `kind` folds into, or `None` if such files are not folded
/// (`all` gauges keep their per-pid series; live gauges are deleted instead).
pub fn archive_name(kind: &FileKind) -> Option<String> {
    let prefix = match kind {
        FileKind::Counter => "counter".to_owned(),
        FileKind::Histogram => "histogram".to_owned(),
        FileKind::Summary => "summary".to_owned(),
        FileKind::Unknown => "unknown".to_owned(),
        FileKind::Gauge(
            m @ (GaugeMode::Sum | GaugeMode::Min | GaugeMode::Max | GaugeMode::MostRecent),
        ) => {
            format!("gauge_{}", m.token())
        }
        FileKind::Gauge(_) => return None,
    };
    Some(format!("{prefix}_{ARCHIVE_PID}.db"))
}

/// How values of one archive combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fold {
    Sum,
    Min,
    Max,
    MostRecent,
}

fn fold_of(kind: &FileKind) -> Fold {
    match kind {
        FileKind::Gauge(m) => match m.rule() {
            GaugeRule::Min => Fold::Min,
            GaugeRule::Max => Fold::Max,
            GaugeRule::MostRecent => Fold::MostRecent,
            GaugeRule::Sum | GaugeRule::PerPid => Fold::Sum,
        },
        _ => Fold::Sum,
    }
}

enum Acc {
    Sum(ExactSum),
    Value(f64),
    Recent(f64, f64),
}

/// The record of absorbed files of an archive: `dev ino born name` per line.
fn record_line(name: &str, id: &FileId) -> String {
    let born = id
        .born
        .and_then(|b| b.duration_since(UNIX_EPOCH).ok())
        .map_or("-".to_owned(), |d| d.as_nanos().to_string());
    format!("{} {} {} {}\n", id.dev, id.ino, born, name)
}

/// The absorbed-files record of the archive at `path` (empty if none).
pub fn read_record(path: &Path) -> Vec<String> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let Some(used) = parse::used(&bytes).and_then(|u| usize::try_from(u).ok()) else {
        return Vec::new();
    };
    let Some(tail) = bytes.get(used..) else {
        return Vec::new();
    };
    let Some(rest) = tail.strip_prefix(RECORD_MAGIC) else {
        return Vec::new();
    };
    String::from_utf8_lossy(rest)
        .lines()
        .take_while(|l| *l != "END")
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Whether the archive at `path` records having absorbed the hidden file `name`.
pub fn has_absorbed(path: &Path, name: &str, id: &FileId) -> bool {
    let line = record_line(name, id);
    read_record(path).contains(&line)
}

/// A hidden file waiting to be absorbed.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Hidden name (`.mpe-absorbing.counter_12.db`).
    pub hidden: String,
    /// Identity of the file.
    pub id: FileId,
}

/// Folds `pending` (hidden files of `kind`) into the archive `archive` in `dir`, then
/// deletes them. Returns how many entries the new archive has.
///
/// # Errors
/// I/O errors (a full disk among them); the directory is then unchanged except for a
/// removed temporary file, and the hidden files wait for the next attempt.
pub fn absorb(
    dir: &Path,
    archive: &str,
    kind: &FileKind,
    pending: &[Pending],
) -> io::Result<usize> {
    let fold = fold_of(kind);
    let archive_path = dir.join(archive);
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut accs: HashMap<Vec<u8>, Acc> = HashMap::new();
    let mut add = |key: &[u8], value: f64, ts: f64| {
        let acc = match accs.get_mut(key) {
            Some(acc) => acc,
            None => {
                order.push(key.to_vec());
                let fresh = match fold {
                    Fold::Sum => Acc::Sum(ExactSum::new()),
                    Fold::Min | Fold::Max => Acc::Value(value),
                    Fold::MostRecent => Acc::Recent(value, ts),
                };
                accs.insert(key.to_vec(), fresh);
                accs.get_mut(key).expect("just inserted")
            }
        };
        match acc {
            Acc::Sum(s) => s.add(value),
            Acc::Value(cur) => {
                if (fold == Fold::Min && value < *cur) || (fold == Fold::Max && value > *cur) {
                    *cur = value;
                }
            }
            Acc::Recent(v, t) => {
                if *t < ts {
                    *v = value;
                    *t = ts;
                }
            }
        }
    };
    // The archive first, then the dead files in name order: the order the merge reads.
    let mut sources: Vec<std::path::PathBuf> = Vec::new();
    if archive_path.exists() {
        sources.push(archive_path.clone());
    }
    let mut sorted: Vec<&Pending> = pending.iter().collect();
    sorted.sort_by(|a, b| a.hidden.cmp(&b.hidden));
    sources.extend(sorted.iter().map(|p| dir.join(&p.hidden)));
    for src in &sources {
        let snap = match read::read_file(src, crate::collect::DEFAULT_FILE_LIMIT) {
            Ok(s) => s,
            Err(read::ReadError::Vanished) => continue,
            Err(e) => {
                return Err(io::Error::other(format!(
                    "cannot read {}: {e}",
                    src.display()
                )));
            }
        };
        for e in parse::walk(&snap.bytes, HEADER_LEN, snap.bytes.len(), VALUE_LEN).flatten() {
            if let Some((v, ts)) = parse::value_at(&snap.bytes, e.value_offset) {
                add(e.key, v, ts);
            }
        }
    }
    let mut body = vec![0u8; HEADER_LEN];
    for key in &order {
        let (value, ts) = match &accs[key] {
            Acc::Sum(s) => (s.value_up(), 0.0),
            Acc::Value(v) => (*v, 0.0),
            Acc::Recent(v, t) => (*v, *t),
        };
        let n = key.len();
        body.extend_from_slice(&(n as i32).to_ne_bytes());
        body.extend_from_slice(key);
        body.resize(body.len() + parse::padding(n), b' ');
        body.extend_from_slice(&value.to_ne_bytes());
        body.extend_from_slice(&ts.to_ne_bytes());
    }
    let used = i32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "archive beyond 2 GiB"))?;
    body[..4].copy_from_slice(&used.to_ne_bytes());
    body.extend_from_slice(RECORD_MAGIC);
    for p in &sorted {
        body.extend_from_slice(record_line(&p.hidden, &p.id).as_bytes());
    }
    body.extend_from_slice(b"END\n");

    let temp = dir.join(format!("{TEMP_PREFIX}{archive}"));
    let written = (|| {
        let mut f = fs::File::create(&temp)?;
        f.write_all(&body)?;
        hook("temp_written");
        f.sync_all()?;
        hook("temp_synced");
        fs::rename(&temp, &archive_path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    hook("archive_renamed");
    sync_dir(dir)?;
    for p in &sorted {
        match fs::remove_file(dir.join(&p.hidden)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        hook("hidden_removed");
    }
    sync_dir(dir)?;
    Ok(order.len())
}

/// Makes renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
