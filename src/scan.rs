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

use crate::model::{FileIssue, FileKind, FileProblem, GaugeMode, Reason};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A file the collector would read, with what its name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbFile {
    /// The base name, e.g. `gauge_livesum_123.db`.
    pub name: String,
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

/// Listing the directory failed as a whole.
#[derive(Debug, Error)]
pub enum ScanError {
    /// The directory does not exist (yet).
    #[error("directory {} does not exist", path.display())]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The path is a symbolic link: never followed, it could lead the sidecar (which
    /// deletes dead writers' files) into another directory.
    #[error("{} is a symbolic link; the directory itself must be named (links are not followed)", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The directory could not be listed.
    #[error("cannot list directory {}: {source}", path.display())]
    Unreadable {
        /// The directory.
        path: PathBuf,
        /// The operating system's answer.
        source: io::Error,
    },
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
        name: name.to_owned(),
        kind,
        pid: pid.to_owned(),
        pid_label,
    }))
}

/// Checks that `dir` names a directory itself, not through a symbolic link as its last
/// component (its parents may be links, as Debian's `/var/run` is).
///
/// # Errors
/// [`ScanError::Missing`], [`ScanError::Symlink`], [`ScanError::NotADirectory`] or
/// [`ScanError::Unreadable`].
pub fn check_dir(dir: &Path) -> Result<(), ScanError> {
    let path = || dir.to_owned();
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(ScanError::Symlink { path: path() }),
        Ok(m) if !m.is_dir() => Err(ScanError::NotADirectory { path: path() }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ScanError::Missing { path: path() }),
        Err(source) => Err(ScanError::Unreadable {
            path: path(),
            source,
        }),
    }
}

/// [`parse_name`] for a name as the directory holds it: a `*.db` name that is not UTF-8
/// is one prometheus_client's glob sees and cannot have written.
fn parse_os_name(name: &OsStr) -> Result<Option<DbFile>, FileProblem> {
    match name.to_str() {
        Some(name) => parse_name(name),
        None if name.as_encoded_bytes().ends_with(b".db")
            && !name.as_encoded_bytes().starts_with(b".") =>
        {
            Err(FileProblem::new(
                Reason::BadName,
                "the file name is not UTF-8",
            ))
        }
        None => Ok(None),
    }
}

/// Lists `dir` without following symlinks or recursing.
///
/// # Errors
/// Only when the directory itself cannot be listed; problems with single entries are
/// returned in [`Listing::skipped`].
pub fn scan(dir: &Path) -> Result<Listing, ScanError> {
    check_dir(dir)?;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            return Err(match source.kind() {
                io::ErrorKind::NotFound => ScanError::Missing {
                    path: dir.to_owned(),
                },
                io::ErrorKind::NotADirectory => ScanError::NotADirectory {
                    path: dir.to_owned(),
                },
                _ => ScanError::Unreadable {
                    path: dir.to_owned(),
                    source,
                },
            });
        }
    };
    let mut listing = Listing::default();
    for entry in entries {
        let entry = entry.map_err(|source| ScanError::Unreadable {
            path: dir.to_owned(),
            source,
        })?;
        let os_name = entry.file_name();
        let file = match parse_os_name(&os_name) {
            Ok(Some(file)) => file,
            Ok(None) => continue,
            Err(problem) => {
                listing.skipped.push(problem.of(os_name));
                continue;
            }
        };
        // The entry type comes from readdir and does not follow links.
        let problem = match entry.file_type() {
            Ok(t) if t.is_symlink() => {
                FileProblem::new(Reason::Symlink, "symbolic links are not followed")
            }
            Ok(t) if !t.is_file() => FileProblem::new(Reason::NotRegular, "not a regular file"),
            Ok(_) => {
                listing.files.push(file);
                continue;
            }
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
        let latin1 = OsStr::from_bytes(b"counter_\xe9.db");
        assert_eq!(parse_os_name(latin1).unwrap_err().reason, Reason::BadName);
        assert_eq!(parse_os_name(OsStr::from_bytes(b"\xe9.txt")), Ok(None));
        let odd = parse_name("gauge_weird_5.db").unwrap().unwrap();
        assert_eq!(odd.kind, FileKind::Gauge(GaugeMode::Other("weird".into())));
    }
}
