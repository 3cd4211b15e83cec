//! What is wrong with a web config, said once: the config file, the key (its dotted
//! path, as an operator would search the file for it), and the problem, which names the
//! referenced file when the problem is in one.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A key path and what is wrong there: what the parts return, made an [`Error`](struct@Error)
/// with the config file's path by [`WebConfig::load`](super::WebConfig::load).
pub(crate) type Fault = (String, Problem);

/// A web config that cannot be used.
#[derive(Debug, Error)]
pub struct Error {
    /// The config file.
    pub config: PathBuf,
    /// Dotted path of the key at fault (`tls_server_config.key_file`,
    /// `basic_auth_users.alice`, `tls_server_config.cipher_suites[2]`); empty when the
    /// file as a whole is at fault (unreadable, not YAML).
    pub key: String,
    /// What is wrong.
    #[source]
    pub problem: Problem,
}

impl Error {
    pub(crate) fn new(config: &Path, key: &str, problem: Problem) -> Error {
        Error {
            config: config.to_path_buf(),
            key: key.to_owned(),
            problem,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "web config {}: ", self.config.display())?;
        if !self.key.is_empty() && self.key != "." {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.problem)
    }
}

/// The kinds of problem; the location is in [`Error`](struct@Error).
#[derive(Debug, Error)]
pub enum Problem {
    /// The file cannot be opened or read.
    #[error("cannot read it: {0}")]
    Unreadable(#[source] io::Error),
    /// Not YAML, an unknown key, a value of the wrong type or not one of the allowed
    /// values: the parser's words, with line and column.
    #[error("{0}")]
    Schema(String),
    /// A value the schema allows that we refuse, with the reason.
    #[error("{0}")]
    Refused(String),
    /// A `basic_auth_users` entry that is not a bcrypt hash.
    #[error("not a bcrypt hash ({0}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`")]
    BadHash(String),
    /// A problem in a file the config names (a certificate, key or CA file).
    #[error("{}: {problem}", path.display())]
    InFile {
        /// The file, as resolved against the config file's directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: Box<Problem>,
    },
}

impl Problem {
    /// `self`, as found in the file at `path`.
    pub(crate) fn in_file(self, path: &Path) -> Problem {
        Problem::InFile {
            path: path.to_path_buf(),
            problem: Box::new(self),
        }
    }
}

/// Something accepted that behaves differently from what the file says, or is risky;
/// logged at start and at each reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Dotted path of the key.
    pub key: String,
    /// What happens instead, or the risk.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> Warning {
        Warning {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}
