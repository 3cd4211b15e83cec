//! The YAML schema of exporter-toolkit's web config file, read strictly.
//!
//! exporter-toolkit reads the file with Go's `yaml.UnmarshalStrict`: an unknown key is an
//! error. So it is here, with the key's dotted path (`tls_server_config.cert_filse`),
//! found by `serde_path_to_error` over serde-saphyr's deserializer.
//!
//! Why serde-saphyr: it is pure Rust, built to be panic-free on any input, and actively
//! released; serde_yaml is archived (RUSTSEC-2024-0320), serde_yml is unsound
//! (RUSTSEC-2025-0068), and serde_norway and serde_yaml_ng (last released in 2024) still
//! run the C-to-Rust translation of libyaml.
//!
//! Booleans: Go's yaml.v2 takes YAML 1.1 booleans (`yes`, `no`, `on`, `off`, `y`, `n`)
//! for `http2` and `prefer_server_cipher_suites`, so we do too (serde-saphyr's
//! non-strict booleans; it also takes other capitalisations such as `yEs`). In string
//! positions (a user name `yes`, a header value) they stay strings, as in yaml.v2.
//!
//! A section written without content (`tls_server_config:`) is null: absent, as in Go.
//! An empty file is an empty configuration: plain HTTP, no authentication.

use super::Problem;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// TLS settings; TLS is on when any certificate, key, CA or client auth key is set.
    pub tls_server_config: Option<RawTls>,
    /// HTTP settings.
    pub http_server_config: Option<RawHttp>,
    /// User name to bcrypt hash (null counts as missing, and is refused).
    pub basic_auth_users: Option<BTreeMap<String, Option<String>>>,
    /// The request rate limit.
    pub rate_limit: Option<RawRateLimit>,
}

/// `tls_server_config`. An empty string counts as unset, as in Go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Inline PEM certificate chain (instead of `cert_file`).
    pub cert: Option<String>,
    /// Inline PEM private key (instead of `key_file`).
    pub key: Option<String>,
    /// Inline PEM client CA certificates (instead of `client_ca_file`).
    pub client_ca: Option<String>,
    /// File of the PEM certificate chain, leaf first.
    pub cert_file: Option<String>,
    /// File of the PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<String>,
    /// What is asked of client certificates.
    pub client_auth_type: Option<ClientAuthType>,
    /// File of the PEM client CA certificates.
    pub client_ca_file: Option<String>,
    /// Subject alternative names a client certificate must carry one of.
    pub client_allowed_sans: Option<Vec<String>>,
    /// Lowest TLS version.
    pub min_version: Option<TlsVersion>,
    /// Highest TLS version.
    pub max_version: Option<TlsVersion>,
    /// TLS 1.2 cipher suites by Go name, in preference order.
    pub cipher_suites: Option<Vec<String>>,
    /// Whether the server's suite order wins over the client's (default true).
    pub prefer_server_cipher_suites: Option<bool>,
    /// Key exchange groups by Go name, in preference order.
    pub curve_preferences: Option<Vec<String>>,
}

/// `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// Whether HTTP/2 is offered (default true).
    pub http2: Option<bool>,
    /// Response headers, by name; only the names of [`HEADERS`].
    pub headers: Option<BTreeMap<String, Option<String>>>,
}

/// `rate_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Time between two requests (Go duration, or integer nanoseconds); 0 disables.
    pub interval: Option<GoDuration>,
    /// Requests allowed in a burst.
    pub burst: Option<i64>,
}

/// A Go `time.Duration` as yaml.v2 reads one: a string (`1s`, `1m30s`) or an integer
/// count of nanoseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GoDuration {
    /// Integer nanoseconds.
    Nanos(i64),
    /// A duration string.
    Text(String),
}

/// `client_auth_type`, Go's `tls.ClientAuthType` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthType {
    /// `""`: the same as [`ClientAuthType::NoClientCert`], but does not turn TLS on.
    Unset,
    /// No client certificate is asked for.
    NoClientCert,
    /// A certificate is asked for, not required, and not verified.
    RequestClientCert,
    /// A certificate is required and not verified (`RequireClientCert` is the old name
    /// exporter-toolkit still accepts).
    RequireAnyClientCert,
    /// A certificate is verified against the client CAs when given.
    VerifyClientCertIfGiven,
    /// A certificate is required and verified against the client CAs.
    RequireAndVerifyClientCert,
}

impl ClientAuthType {
    /// The names exporter-toolkit accepts (`tls_config.go`), old name included.
    const NAMES: [(&'static str, ClientAuthType); 7] = [
        ("", ClientAuthType::Unset),
        ("NoClientCert", ClientAuthType::NoClientCert),
        ("RequestClientCert", ClientAuthType::RequestClientCert),
        ("RequireAnyClientCert", ClientAuthType::RequireAnyClientCert),
        ("RequireClientCert", ClientAuthType::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuthType::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuthType::RequireAndVerifyClientCert,
        ),
    ];
}

/// By hand, so a bad value's message lists the names readably (serde's derive would
/// show the empty name as a blank).
impl<'de> Deserialize<'de> for ClientAuthType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ClientAuthType::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown client_auth_type {name:?}, expected one of NoClientCert, \
                     RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, \
                     RequireAndVerifyClientCert"
                ))
            })
    }
}

/// `min_version` and `max_version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.0 (rustls does not speak it).
    TLS10,
    /// TLS 1.1 (rustls does not speak it).
    TLS11,
    /// TLS 1.2.
    TLS12,
    /// TLS 1.3.
    TLS13,
}

/// The response headers exporter-toolkit lets a config set, each with the values it
/// allows (none listed: any value).
pub const HEADERS: &[(&str, &[&str])] = &[
    ("Content-Security-Policy", &[]),
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
];

impl RawTls {
    /// Whether the section turns TLS on: exporter-toolkit's `IsEnabled`, any
    /// certificate, key, CA or client auth key set.
    pub fn is_enabled(&self) -> bool {
        [
            &self.cert,
            &self.key,
            &self.client_ca,
            &self.cert_file,
            &self.key_file,
            &self.client_ca_file,
        ]
        .into_iter()
        .any(|v| non_empty(v).is_some())
            || self
                .client_auth_type
                .is_some_and(|c| c != ClientAuthType::Unset)
    }
}

/// The value of an optional string key, an empty string counting as unset (Go's zero
/// value).
pub fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Parses the file's text.
///
/// # Errors
/// The dotted path of the key at fault (`.` for the document itself) and the parser's
/// message, with line and column.
pub fn parse(text: &str) -> Result<Raw, (String, Problem)> {
    let options = serde_saphyr::options! {
        // One line per error: the snippet is for terminals, the log wants one line.
        with_snippet: false,
    };
    let mut path = None;
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, Raw>(de).map_err(|err| {
            path = Some(err.path().to_string());
            err.into_inner()
        })
    });
    parsed.map_err(|err| {
        let key = path.unwrap_or_else(|| ".".to_owned());
        duplicate_key(&key, &err.to_string())
            .unwrap_or_else(|| (key, Problem::Schema(err.to_string())))
    })
}

/// A key given twice, in the user's terms: the parser names its own option and leaves
/// the key out of the path (`basic_auth_users.?`).
fn duplicate_key(path: &str, message: &str) -> Option<(String, Problem)> {
    let (_, rest) = message.split_once("duplicate mapping key: ")?;
    let (name, tail) = rest.split_once(", set DuplicateKeyPolicy in Options if acceptable")?;
    let parent = path.strip_suffix('?').unwrap_or(path).trim_end_matches('.');
    let key = match parent {
        "" => name.to_owned(),
        p => format!("{p}.{name}"),
    };
    Some((key, Problem::Schema(format!("given twice{tail}"))))
}

/// `http_server_config.headers`, checked as exporter-toolkit checks them: only the names
/// of [`HEADERS`], with their allowed values. A blank value leaves the header out, as
/// its docs say ("Unset if blank").
///
/// # Errors
/// The header's key path and why.
pub fn headers(
    headers: Option<&BTreeMap<String, Option<String>>>,
) -> Result<Vec<(String, String)>, (String, Problem)> {
    let mut out = Vec::new();
    for (name, value) in headers.into_iter().flatten() {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = HEADERS.iter().find(|(n, _)| n == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            return Err((
                key,
                Problem::Refused(format!(
                    "this header cannot be configured; allowed: {}",
                    names.join(", ")
                )),
            ));
        };
        let value = value.as_deref().unwrap_or("");
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.contains(&value) {
            return Err((
                key,
                Problem::Refused(format!("{value:?} is not one of {}", allowed.join(", "))),
            ));
        }
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err((
                key,
                Problem::Refused("a header value must be printable ASCII".into()),
            ));
        }
        out.push((name.clone(), value.to_owned()));
    }
    Ok(out)
}
