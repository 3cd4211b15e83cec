//! Why a file (or part of one) was not used, in a form that is both logged and counted.
//!
//! Every stage that can meet bad input returns a [`FileProblem`] instead of failing: one
//! bad file must never cost the scrape. A stage that reads a file's bytes does not know
//! (or need) its name; `collect` attaches it once, making a [`FileIssue`] (`scan`, which
//! lists the names, makes its own). The [`Reason`] is a short,
//! stable token because it becomes the `reason` label of
//! `multiproc_exporter_file_errors_total`.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

/// The category of a problem with one file. Stable: used as a metric label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The name ends in `.db` but does not follow `<type>_[<mode>_]<pid>.db`.
    BadName,
    /// A type prometheus_client writes no files for (info, stateset, gaugehistogram).
    UnsupportedType,
    /// A symbolic link: never followed, it could point outside the directory.
    Symlink,
    /// A directory, FIFO, socket or device named `*.db`.
    NotRegular,
    /// Permission denied or another error opening or reading the file.
    Unreadable,
    /// The file disappeared between listing and reading.
    Vanished,
    /// Zero bytes, or too short to hold the 8-byte header.
    Empty,
    /// The header's `used` is negative or smaller than the header itself.
    BadHeader,
    /// `used` points past the end of the file; the part that exists was read.
    UsedBeyondEof,
    /// The file shrank below what was already read (someone truncated it, perhaps while
    /// it was being read): its last good values are kept.
    Shrunk,
    /// The file is larger than the configured per-file bound; the bound was read.
    TooLarge,
    /// `used` claims bytes the file does not hold (holes): only the data before the first
    /// hole was read, so a header cannot make the sidecar read or allocate what is not
    /// there.
    Sparse,
    /// An entry's key length is negative or runs past `used`.
    BadLength,
    /// The last entry is cut short: its value lies past `used`.
    TornEntry,
    /// A key is not valid UTF-8.
    BadUtf8,
    /// A key is not valid JSON.
    BadJson,
    /// A key is JSON but not `[metric, sample, {labels}, help]` with string members.
    BadKey,
    /// A histogram bucket whose `le` label is not a number.
    BadBucket,
    /// A file written by prometheus_client before 0.18 (8-byte values); skipped whole.
    OldFormat,
    /// Another program's file (for example SQLite) named `*.db`.
    Foreign,
}

impl Reason {
    /// Every reason, for declaring metric label values up front.
    pub const ALL: [Reason; 20] = [
        Reason::BadName,
        Reason::UnsupportedType,
        Reason::Symlink,
        Reason::NotRegular,
        Reason::Unreadable,
        Reason::Vanished,
        Reason::Empty,
        Reason::BadHeader,
        Reason::UsedBeyondEof,
        Reason::Shrunk,
        Reason::TooLarge,
        Reason::Sparse,
        Reason::BadLength,
        Reason::TornEntry,
        Reason::BadUtf8,
        Reason::BadJson,
        Reason::BadKey,
        Reason::BadBucket,
        Reason::OldFormat,
        Reason::Foreign,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadName => "bad_name",
            Reason::UnsupportedType => "unsupported_type",
            Reason::Symlink => "symlink",
            Reason::NotRegular => "not_regular_file",
            Reason::Unreadable => "unreadable",
            Reason::Vanished => "vanished",
            Reason::Empty => "empty",
            Reason::BadHeader => "bad_header",
            Reason::UsedBeyondEof => "used_beyond_eof",
            Reason::Shrunk => "shrunk",
            Reason::TooLarge => "too_large",
            Reason::Sparse => "sparse",
            Reason::BadLength => "bad_length",
            Reason::TornEntry => "torn_entry",
            Reason::BadUtf8 => "bad_utf8",
            Reason::BadJson => "bad_json",
            Reason::BadKey => "bad_key",
            Reason::BadBucket => "bad_bucket",
            Reason::OldFormat => "old_format",
            Reason::Foreign => "foreign",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with one file, as a stage finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    /// The category.
    pub reason: Reason,
    /// A sentence for humans: what was found, where (byte offsets) and what was kept.
    pub detail: String,
}

impl FileProblem {
    /// A problem of category `reason`.
    pub fn new(reason: Reason, detail: impl Into<String>) -> FileProblem {
        FileProblem {
            reason,
            detail: detail.into(),
        }
    }

    /// The problem, attributed to the file `file` of the directory.
    pub fn of(self, file: impl Into<OsString>) -> FileIssue {
        FileIssue {
            file: file.into(),
            problem: self,
        }
    }
}

/// One problem with one file: which file (its name in the directory, as bytes: a name
/// need not be UTF-8), and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileIssue {
    /// The file name inside the directory.
    pub file: OsString,
    /// What was wrong.
    pub problem: FileProblem,
}

impl FileIssue {
    /// The category.
    pub fn reason(&self) -> Reason {
        self.problem.reason
    }

    /// The sentence for humans.
    pub fn detail(&self) -> &str {
        &self.problem.detail
    }

    /// The file name, for display (escaped: see [`Escaped`]).
    pub fn name(&self) -> Escaped<'_> {
        Escaped::path(Path::new(&self.file))
    }

    /// The file's path in `dir`, escaped for a log line.
    pub fn path_in(&self, dir: &Path) -> String {
        Escaped::path(&dir.join(&self.file)).to_string()
    }
}

/// A file name or path as it may appear in a log line: whoever can write the directory
/// chooses its names, so control characters (a newline would forge a log line, an ANSI
/// escape would rewrite the terminal) are written as `\n`, `\r`, `\t`, `\u{1b}`, a
/// backslash as `\\`, and bytes that are not UTF-8 as `\xNN`.
pub struct Escaped<'a>(&'a [u8]);

impl<'a> Escaped<'a> {
    /// The bytes of `path`.
    pub fn path(path: &'a Path) -> Escaped<'a> {
        Escaped(path.as_os_str().as_encoded_bytes())
    }

    /// A message that may quote what a file or a client chose (a metric name, a label
    /// value).
    pub fn text(text: &'a str) -> Escaped<'a> {
        Escaped(text.as_bytes())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                    c => write!(f, "{c}")?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for FileIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.name(),
            self.problem.detail,
            self.problem.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn test_issue_9_names_are_escaped_for_logs() {
        let forged = "counter_6\n2030-01-01T00:00:00.000000Z ERROR forged\r\u{1b}[31m\\.db";
        let shown = Escaped::path(Path::new(forged)).to_string();
        assert_eq!(
            shown,
            "counter_6\\n2030-01-01T00:00:00.000000Z ERROR forged\\r\\u{1b}[31m\\\\.db"
        );
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        let latin1 = std::ffi::OsStr::from_bytes(b"counter_\xe9\xff.db");
        assert_eq!(
            Escaped::path(Path::new(latin1)).to_string(),
            "counter_\\xe9\\xff.db"
        );
        assert_eq!(
            Escaped::path(Path::new("gauge_all_1.db")).to_string(),
            "gauge_all_1.db"
        );
    }
}
