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

use crate::dir::{Dir, FileId};
use crate::fold::{Acc, Fold};
use crate::format::{self, HEADER_LEN, VALUE_LEN};
use crate::model::{FileKind, LastGood, LastGoodEntry};
use crate::read;
use crate::testpoint::crash as hook;
use std::collections::HashMap;
use std::io::{self, Write};
use std::time::UNIX_EPOCH;

/// Prefix of a dead file renamed for absorption.
pub const ABSORBING_PREFIX: &str = ".mpe-absorbing.";
/// Prefix of an archive being written.
pub const TEMP_PREFIX: &str = ".mpe-tmp.";
/// The pid part of archive names.
pub const ARCHIVE_PID: &str = "archive";
const RECORD_MAGIC: &[u8] = b"\nMPE-ABSORBED-v1\n";

/// The archive a file of `kind` folds into, or `None` if such files are not folded
/// (see [`Fold::for_archive`]).
pub fn archive_name(kind: &FileKind) -> Option<String> {
    Fold::for_archive(kind)?;
    let prefix = match kind {
        FileKind::Gauge(mode) => format!("gauge_{}", mode.token()),
        other => other.label().to_owned(),
    };
    Some(format!("{prefix}_{ARCHIVE_PID}.db"))
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
pub fn read_record(dir: &Dir, archive: &str) -> Vec<String> {
    let Ok(bytes) = dir.read(archive) else {
        return Vec::new();
    };
    let Some(used) = format::used(&bytes).and_then(|u| usize::try_from(u).ok()) else {
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
pub fn has_absorbed(dir: &Dir, archive: &str, name: &str, id: &FileId) -> bool {
    let line = record_line(name, id);
    read_record(dir, archive).contains(&line)
}

/// A hidden file waiting to be absorbed, or a ghost: the last good values of a file that
/// vanished without our compaction (nothing on disk to read, record or delete).
#[derive(Clone, Debug)]
pub struct Pending {
    /// Hidden name (`.mpe-absorbing.counter_12.db`); a ghost's original name.
    pub hidden: String,
    /// Whether `hidden` is a file in the directory (false for a ghost).
    pub on_disk: bool,
    /// Identity of the file.
    pub id: FileId,
    /// What the sidecar last read from it (empty after a restart).
    pub last: LastGood,
}

/// Folds `pending` (hidden files of `kind`) into the archive `archive` in `dir`, then
/// deletes them. `archive_last` is what a reader last read from the archive itself: an
/// archive someone truncated loses no counts either. Returns how many entries the new archive has.
///
/// # Errors
/// I/O errors (a full disk among them); the directory is then unchanged except for a
/// removed temporary file, and the hidden files wait for the next attempt.
pub fn absorb(
    dir: &Dir,
    archive: &str,
    kind: &FileKind,
    pending: &[Pending],
    archive_last: &[LastGoodEntry],
) -> io::Result<usize> {
    let Some(fold) = Fold::for_archive(kind) else {
        return Err(io::Error::other(format!(
            "{kind:?} files are not folded into archives"
        )));
    };
    let mut sorted: Vec<&Pending> = pending.iter().collect();
    sorted.sort_by(|a, b| a.hidden.cmp(&b.hidden));
    // The archive first, then the dead files in name order: the order the merge reads.
    let mut sources: Vec<Source<'_>> = Vec::new();
    sources.push(Source {
        name: Some(archive),
        last: archive_last,
    });
    sources.extend(sorted.iter().map(|p| Source {
        name: p.on_disk.then_some(p.hidden.as_str()),
        last: &p.last,
    }));
    // Counts only grow: of what the file holds and what was last read from it, the
    // larger is the count (the file may have been truncated by someone else).
    let monotonic = matches!(
        kind,
        FileKind::Counter | FileKind::Histogram | FileKind::Summary
    );
    let folded = fold_files(dir, &sources, fold, monotonic)?;
    let body = encode_archive(&folded, &sorted)?;
    replace_durably(dir, archive, &body)?;
    for p in sorted.iter().filter(|p| p.on_disk) {
        match dir.remove(&p.hidden) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        hook("hidden_removed");
    }
    dir.sync()?;
    Ok(folded.order.len())
}

/// Every key of the folded files, in first-seen order, with its running fold.
struct Folded {
    order: Vec<Vec<u8>>,
    accs: HashMap<Vec<u8>, Acc>,
}

/// A file to fold (none for a ghost), with the values last read from it.
struct Source<'a> {
    name: Option<&'a str>,
    last: &'a [LastGoodEntry],
}

/// Folds the entries of `sources` (in that order) by key text with `fold`.
fn fold_files(
    dir: &Dir,
    sources: &[Source<'_>],
    fold: Fold,
    monotonic: bool,
) -> io::Result<Folded> {
    let mut out = Folded {
        order: Vec::new(),
        accs: HashMap::new(),
    };
    for src in sources {
        let entries = file_entries(dir, src.name, src.last, monotonic)?;
        for (key, v, ts) in entries {
            if !out.accs.contains_key(&key) {
                out.order.push(key.clone());
                out.accs.insert(key.clone(), fold.start());
            }
            if let Some(acc) = out.accs.get_mut(&key) {
                acc.add(v, ts);
            }
        }
    }
    Ok(out)
}

/// The entries of one source: what the file holds, completed by what was last read from
/// it (entries the file lost), and for counts the larger of the two.
fn file_entries(
    dir: &Dir,
    src: Option<&str>,
    last: &[LastGoodEntry],
    monotonic: bool,
) -> io::Result<Vec<(Vec<u8>, f64, f64)>> {
    let mut out: Vec<(Vec<u8>, f64, f64)> = Vec::new();
    let mut at: HashMap<Vec<u8>, usize> = HashMap::new();
    let read = src.map(|src| (src, read::read_file(dir, src, read::DEFAULT_FILE_LIMIT)));
    let snap = match read {
        None | Some((_, Err(read::ReadError::Vanished))) => None,
        Some((_, Ok(s))) => Some(s),
        Some((src, Err(e))) => {
            return Err(io::Error::other(format!(
                "cannot read {}: {e}",
                crate::model::Escaped::path(&dir.join(src))
            )));
        }
    };
    if let Some(snap) = &snap {
        let bytes = &snap.bytes;
        for e in format::walk(bytes, HEADER_LEN, bytes.len(), VALUE_LEN).flatten() {
            if let Some((v, ts)) = format::value_at(bytes, e.value_offset) {
                at.entry(e.key.to_vec()).or_insert(out.len());
                out.push((e.key.to_vec(), v, ts));
            }
        }
    }
    for (key, v, ts) in last {
        match at.get(&key[..]) {
            None => out.push((key.to_vec(), *v, *ts)),
            Some(&i) if monotonic && is_count(key) && *v > out[i].1 => out[i].1 = *v,
            Some(_) => {}
        }
    }
    Ok(out)
}

/// Whether the sample of this key only ever grows: a counter's `_total`, a histogram's
/// `_bucket` and `_count`, a summary's `_count` (a `_sum` may fall).
fn is_count(key: &[u8]) -> bool {
    format::key::decode(key).is_ok_and(|k| {
        ["_total", "_bucket", "_count"]
            .iter()
            .any(|s| k.name.ends_with(s))
    })
}

/// The archive's bytes: the folded entries, then (after `used`, where no reader looks)
/// the record of the hidden files it absorbed.
fn encode_archive(folded: &Folded, absorbed: &[&Pending]) -> io::Result<Vec<u8>> {
    let mut body = vec![0u8; HEADER_LEN];
    for key in &folded.order {
        let (value, ts) = folded.accs[key].archived();
        format::encode_entry(&mut body, key, value, ts);
    }
    let used = i32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::FileTooLarge, "archive beyond 2 GiB"))?;
    format::set_used(&mut body, used);
    body.extend_from_slice(RECORD_MAGIC);
    // A ghost leaves nothing on disk to recover after a crash: no line.
    for p in absorbed.iter().filter(|p| p.on_disk) {
        body.extend_from_slice(record_line(&p.hidden, &p.id).as_bytes());
    }
    body.extend_from_slice(b"END\n");
    Ok(body)
}

/// Writes `body` to a temporary file, syncs it and renames it over `dir/name`.
fn replace_durably(dir: &Dir, name: &str, body: &[u8]) -> io::Result<()> {
    let temp = format!("{TEMP_PREFIX}{name}");
    let written = (|| {
        let mut f = dir.create(&temp)?;
        f.write_all(body)?;
        hook("temp_written");
        f.sync_all()?;
        hook("temp_synced");
        dir.rename(&temp, name)
    })();
    if let Err(e) = written {
        let _ = dir.remove(&temp);
        return Err(e);
    }
    hook("archive_renamed");
    dir.sync()
}
