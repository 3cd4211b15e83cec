//! Stage 1: list the directory and read each file name as prometheus_client does.
//!
//! The collector globs `*.db` (hidden names excluded) and splits the base name on `_`:
//! the type is the first field, a gauge's mode the second, and a gauge's `pid` label the
//! third field minus its last three characters. We keep that exact rule for the `pid`
//! label (an identifier containing `_` is truncated upstream, and the merged output must
//! match), and also keep the whole identifier, which liveness needs.
//!
//! Bad input: names that do not fit the grammar, symlinks and non-regular files are
//! reported and skipped; they never stop the listing. Only an unlistable directory is an
//! error, because then nothing can be served.

pub use crate::dir::ScanError;
use crate::dir::{Dir, Kind};
use crate::model::{FileIssue, FileKind, FileProblem, GaugeMode, Reason};
use std::ffi::{OsStr, OsString};
use std::io;

/// A file the collector would read, with what its name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbFile {
    /// The base name, e.g. `gauge_livesum_123.db`: bytes, as the directory holds it
    /// (prometheus_client reads a name that is not UTF-8 like any other).
    pub name: OsString,
    /// What the file holds.
    pub kind: FileKind,
    /// The writer's process identifier as written in the name (usually a pid).
    pub pid: String,
    /// The `pid` label value prometheus_client derives for `all` gauges.
    pub pid_label: String,
}

/// The result of listing a directory: readable candidates and skipped names.
#[derive(Debug, Default)]
pub struct Listing {
    /// Files to read, sorted by name (bytewise), which fixes the merge order.
    pub files: Vec<DbFile>,
    /// Names ending in `.db` that will not be read, and why.
    pub skipped: Vec<FileIssue>,
}

/// Reads a base name with prometheus_client's rules.
///
/// `Ok(None)` means the collector would not look at the name at all (not `*.db`, or
/// hidden); `Err` means it would, and it is not usable.
///
/// ```
/// use multiproc_exporter::model::{FileKind, GaugeMode};
/// use multiproc_exporter::scan::parse_name;
/// let f = parse_name("gauge_livesum_4242.db").unwrap().unwrap();
/// assert_eq!(f.kind, FileKind::Gauge(GaugeMode::LiveSum));
/// assert_eq!(f.pid, "4242");
/// assert!(parse_name("notes.txt").unwrap().is_none());
/// ```
pub fn parse_name(name: &str) -> Result<Option<DbFile>, FileProblem> {
    let Some(stem) = name.strip_suffix(".db") else {
        return Ok(None);
    };
    if name.starts_with('.') {
        return Ok(None);
    }
    let parts: Vec<&str> = name.split('_').collect();
    let bad = |what: &str| Err(FileProblem::new(Reason::BadName, what));
    let (kind, pid) = match parts[0] {
        "counter" | "histogram" | "summary" | "unknown" | "untyped" => {
            let kind = match parts[0] {
                "counter" => FileKind::Counter,
                "histogram" => FileKind::Histogram,
                "summary" => FileKind::Summary,
                _ => FileKind::Unknown,
            };
            (kind, &stem[parts[0].len() + 1..])
        }
        "gauge" => {
            if parts.len() < 3 {
                return bad("a gauge file name needs a mode and a pid: gauge_<mode>_<pid>.db");
            }
            let mode = GaugeMode::from_token(parts[1]);
            (
                FileKind::Gauge(mode),
                &stem[parts[0].len() + parts[1].len() + 2..],
            )
        }
        "info" | "stateset" | "gaugehistogram" => {
            return Err(FileProblem::new(
                Reason::UnsupportedType,
                format!("prometheus_client writes no {} files", parts[0]),
            ));
        }
        _ if parts.len() == 1 => {
            return bad("the name has no type prefix (expected <type>_<pid>.db)");
        }
        other => {
            return Err(FileProblem::new(
                Reason::BadName,
                format!("unknown metric type {other:?} in the file name"),
            ));
        }
    };
    let pid_label = match &kind {
        // `parts[2][:-3]`: drop three characters, as the collector does.
        FileKind::Gauge(_) => {
            let field = parts[2];
            let keep = field.chars().count().saturating_sub(3);
            field.chars().take(keep).collect()
        }
        _ => String::new(),
    };
    Ok(Some(DbFile {
        name: OsString::from(name),
        kind,
        pid: pid.to_owned(),
        pid_label,
    }))
}

/// [`parse_name`] for a name as the directory holds it. A name that is not UTF-8 is read
/// as prometheus_client reads it: Python decodes each byte that is not UTF-8 to one
/// character (a surrogate), and splits and slices that string; we read each such byte as
/// one U+FFFD, which splits and slices alike (it is neither `_` nor `.`), and is what the
/// `pid` label then holds (Python could not encode the surrogate in its output at all).
fn parse_os_name(name: &OsStr) -> Result<Option<DbFile>, FileProblem> {
    if let Some(name) = name.to_str() {
        return parse_name(name);
    }
    let mut text = String::new();
    for chunk in name.as_encoded_bytes().utf8_chunks() {
        text.push_str(chunk.valid());
        text.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
    }
    Ok(parse_name(&text)?.map(|file| DbFile {
        name: name.to_owned(),
        ..file
    }))
}

/// Lists `dir` without following symlinks or recursing.
///
/// # Errors
/// Only when the directory itself cannot be listed; problems with single entries are
/// returned in [`Listing::skipped`].
pub fn scan(dir: &Dir) -> Result<Listing, ScanError> {
    let entries = dir.entries().map_err(|source| ScanError::Unreadable {
        path: dir.path().to_owned(),
        source,
    })?;
    let mut listing = Listing::default();
    for entry in entries {
        let file = match parse_os_name(&entry.name) {
            Ok(Some(file)) => file,
            Ok(None) => continue,
            Err(problem) => {
                listing.skipped.push(problem.of(entry.name));
                continue;
            }
        };
        // The type comes from the listing (or a `statx`) and never follows a link.
        let kind = match entry.kind {
            Some(kind) => Ok(kind),
            None => dir.stat(&entry.name).map(|s| s.kind),
        };
        let problem = match kind {
            Ok(Kind::Symlink) => {
                FileProblem::new(Reason::Symlink, "symbolic links are not followed")
            }
            Ok(Kind::File) => {
                listing.files.push(file);
                continue;
            }
            Ok(_) => FileProblem::new(Reason::NotRegular, "not a regular file"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => FileProblem::new(
                Reason::Unreadable,
                format!("cannot read the file type: {e}"),
            ),
        };
        listing.skipped.push(problem.of(file.name));
    }
    listing.files.sort_by(|a, b| a.name.cmp(&b.name));
    listing.skipped.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_client() {
        let f = parse_name("counter_123.db").unwrap().unwrap();
        assert_eq!((f.kind, f.pid.as_str()), (FileKind::Counter, "123"));
        let g = parse_name("gauge_livesum_77.db").unwrap().unwrap();
        assert_eq!(g.kind, FileKind::Gauge(GaugeMode::LiveSum));
        assert_eq!((g.pid.as_str(), g.pid_label.as_str()), ("77", "77"));
        let u = parse_name("untyped_1.db").unwrap().unwrap();
        assert_eq!(u.kind, FileKind::Unknown);
    }

    #[test]
    fn pid_label_keeps_the_upstream_truncation() {
        // `gauge_all_host_a_7.db` gets `pid="h"` from prometheus_client.
        let g = parse_name("gauge_all_host_a_7.db").unwrap().unwrap();
        assert_eq!(g.pid_label, "h");
        assert_eq!(g.pid, "host_a_7");
    }

    #[test]
    fn ignored_and_bad_names() {
        assert_eq!(parse_name("x.db.tmp"), Ok(None));
        assert_eq!(parse_name(".counter_1.db"), Ok(None));
        assert_eq!(
            parse_name("gauge_1.db").unwrap_err().reason,
            Reason::BadName
        );
        assert_eq!(parse_name("foo.db").unwrap_err().reason, Reason::BadName);
        assert_eq!(
            parse_name("sqlite_x.db").unwrap_err().reason,
            Reason::BadName
        );
        assert_eq!(
            parse_name("info_1.db").unwrap_err().reason,
            Reason::UnsupportedType
        );
        use std::os::unix::ffi::OsStrExt;
        let latin1 = parse_os_name(OsStr::from_bytes(b"counter_\xe9.db"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (latin1.kind, latin1.pid.as_str()),
            (FileKind::Counter, "\u{fffd}")
        );
        assert_eq!(latin1.name.as_encoded_bytes(), b"counter_\xe9.db");
        // One character per byte, as Python's surrogates.
        let g = parse_os_name(OsStr::from_bytes(b"gauge_all_a\xe9\x807.db"))
            .unwrap()
            .unwrap();
        assert_eq!(g.pid_label, "a\u{fffd}\u{fffd}7");
        assert_eq!(
            parse_os_name(OsStr::from_bytes(b"\xe9_1.db"))
                .unwrap_err()
                .reason,
            Reason::BadName
        );
        assert_eq!(parse_os_name(OsStr::from_bytes(b"\xe9.txt")), Ok(None));
        let odd = parse_name("gauge_weird_5.db").unwrap().unwrap();
        assert_eq!(odd.kind, FileKind::Gauge(GaugeMode::Other("weird".into())));
    }
}
