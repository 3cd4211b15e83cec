//! `tls_server_config` as a rustls `ServerConfig`, with ring as the one crypto provider.
//!
//! Where rustls cannot do what Go's crypto/tls does, the decision (issue 12):
//!
//! - `min_version` TLS10 or TLS11 is accepted with a warning and raised to TLS12 (rustls
//!   speaks neither); `max_version` below TLS12 is refused, as no version would remain.
//! - `cipher_suites` applies to TLS 1.2 only, as in Go; the TLS 1.3 suites are always
//!   offered, and naming one is accepted and changes nothing. The CBC suites Go accepts
//!   are refused by name (rustls implements none); other names are unknown, as in Go.
//! - `curve_preferences`: X25519, CurveP256 and CurveP384; CurveP521 is refused by name
//!   (ring has no P-521).
//! - `client_auth_type` RequestClientCert and RequireAnyClientCert accept any chain, as
//!   Go does, but still check the handshake signature ([`super::verify`]).
//! - Verifying client certificates needs `client_ca_file` or `client_ca`: the system
//!   trust store Go falls back to is not used (the image has none).
//! - Setting both a file key and its inline form (`cert_file` and `cert`) is refused
//!   (exporter-toolkit's docs say not to; Go silently takes the file).
//! - `client_allowed_sans` with a `client_auth_type` that asks for no certificate is
//!   refused: Go ignores the list then, which looks like protection and is none.

use super::error::Fault;
use super::schema::{ClientAuthType, RawTls, TlsVersion, non_empty};
use super::verify::{AnyCertVerifier, SanVerifier};
use super::{Problem, Warning, read_bounded, resolve};
use rustls::RootCertStore;
use rustls::crypto::ring::{cipher_suite, default_provider, kx_group};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS, ready to serve.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The rustls configuration new connections are accepted with.
    pub server: Arc<ServerConfig>,
    /// The serving (leaf) certificate's notAfter, Unix seconds: a self-metric, so an
    /// alert fires before it expires.
    pub not_after: i64,
    /// What is asked of clients.
    pub client_auth: ClientAuthType,
}

/// Go's names of the TLS 1.3 suites: accepted in `cipher_suites`, always offered.
const TLS13_SUITES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The CBC suites of Go's `tls.CipherSuites()`: valid there, refused here.
const CBC_SUITES: [&str; 4] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

/// The TLS 1.2 suites by Go name: Go's AEAD suites, all of which ring has.
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// The key exchange groups by exporter-toolkit's curve name.
fn curve(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    match name {
        "X25519" => Ok(kx_group::X25519),
        "CurveP256" => Ok(kx_group::SECP256R1),
        "CurveP384" => Ok(kx_group::SECP384R1),
        "CurveP521" => Err(
            "CurveP521 is not available: ring has no P-521; use CurveP384, CurveP256 or X25519"
                .into(),
        ),
        _ => Err(format!(
            "unknown curve {name:?}; known: X25519, CurveP256, CurveP384 (CurveP521 is not available)"
        )),
    }
}

const NO_KEY: &str = "no private key in it (PEM PRIVATE KEY, RSA PRIVATE KEY or \
                      EC PRIVATE KEY; an encrypted key cannot be used)";

/// Where a PEM value comes from.
enum Source<'a> {
    File { key: &'static str, path: PathBuf },
    Inline { key: &'static str, text: &'a str },
}

impl Source<'_> {
    fn key(&self) -> &'static str {
        match self {
            Source::File { key, .. } | Source::Inline { key, .. } => key,
        }
    }

    /// A fault at this source's key, naming the file when it is one.
    fn fault(&self, problem: Problem) -> Fault {
        match self {
            Source::File { key, path } => ((*key).to_owned(), problem.in_file(path)),
            Source::Inline { key, .. } => ((*key).to_owned(), problem),
        }
    }

    fn bytes(&self, files: &mut Vec<PathBuf>) -> Result<Cow<'_, [u8]>, Fault> {
        match self {
            Source::File { path, .. } => {
                files.push(path.clone());
                read_bounded(path)
                    .map(Cow::Owned)
                    .map_err(|p| self.fault(p))
            }
            Source::Inline { text, .. } => Ok(Cow::Borrowed(text.as_bytes())),
        }
    }
}

/// The source of one PEM value given inline under `inline_key` or as a file under
/// `file_key`: at most one of the two.
fn source<'a>(
    inline: &'a Option<String>,
    inline_key: &'static str,
    file: &Option<String>,
    file_key: &'static str,
    base: &Path,
) -> Result<Option<Source<'a>>, Fault> {
    match (non_empty(inline), non_empty(file)) {
        (Some(_), Some(_)) => Err((
            file_key.to_owned(),
            Problem::Refused(format!(
                "set either {} or {}, not both",
                short(file_key),
                short(inline_key)
            )),
        )),
        (Some(text), None) => Ok(Some(Source::Inline {
            key: inline_key,
            text,
        })),
        (None, Some(path)) => Ok(Some(Source::File {
            key: file_key,
            path: resolve(base, path),
        })),
        (None, None) => Ok(None),
    }
}

/// The last segment of a dotted key.
fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

fn certificates(
    src: &Source<'_>,
    files: &mut Vec<PathBuf>,
) -> Result<Vec<CertificateDer<'static>>, Fault> {
    let bytes = src.bytes(files)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| src.fault(Problem::Refused(format!("not PEM: {e}"))))?;
    if certs.is_empty() {
        return Err(src.fault(Problem::Refused("no PEM CERTIFICATE block in it".into())));
    }
    Ok(certs)
}

fn private_key(
    src: &Source<'_>,
    files: &mut Vec<PathBuf>,
) -> Result<PrivateKeyDer<'static>, Fault> {
    let bytes = src.bytes(files)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        src.fault(Problem::Refused(match e {
            rustls::pki_types::pem::Error::NoItemsFound => NO_KEY.to_owned(),
            e => format!("not a PEM private key: {e}"),
        }))
    })
}

/// Builds the TLS configuration of a section that turns TLS on, recording every file
/// read in `files` and what was changed in `warnings`.
///
/// # Errors
/// The key at fault and why.
pub(crate) fn build(
    t: &RawTls,
    base: &Path,
    files: &mut Vec<PathBuf>,
    warnings: &mut Vec<Warning>,
) -> Result<Tls, Fault> {
    let versions = versions(t, warnings)?;
    let mut provider = default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        provider.cipher_suites = cipher_suites(names, &versions, warnings)?;
    }
    if let Some(names) = t.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let group = curve(name).map_err(|m| {
                (
                    format!("tls_server_config.curve_preferences[{i}]"),
                    Problem::Refused(m),
                )
            })?;
            if !groups.iter().any(|g| g.name() == group.name()) {
                groups.push(group);
            }
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    let cert_src = source(
        &t.cert,
        "tls_server_config.cert",
        &t.cert_file,
        "tls_server_config.cert_file",
        base,
    )?
    .ok_or_else(|| {
        missing(
            "tls_server_config.cert_file",
            "missing one of cert or cert_file",
        )
    })?;
    let key_src = source(
        &t.key,
        "tls_server_config.key",
        &t.key_file,
        "tls_server_config.key_file",
        base,
    )?
    .ok_or_else(|| {
        missing(
            "tls_server_config.key_file",
            "missing one of key or key_file",
        )
    })?;
    let chain = certificates(&cert_src, files)?;
    let key = private_key(&key_src, files)?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_src.fault(Problem::Refused("no PEM CERTIFICATE block in it".into())))?;
    let not_after = not_after(leaf).map_err(|m| cert_src.fault(Problem::Refused(m)))?;
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        key_src.fault(Problem::Refused(match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key does not belong to the certificate of {}",
                short(cert_src.key())
            ),
            e => format!("the private key cannot be used: {e}"),
        }))
    })?;

    let verifier = client_verifier(t, base, &provider, files, warnings)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            (
                "tls_server_config".to_owned(),
                Problem::Refused(e.to_string()),
            )
        })?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    server.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    Ok(Tls {
        server: Arc::new(server),
        not_after,
        client_auth: t.client_auth_type.unwrap_or(ClientAuthType::Unset),
    })
}

fn missing(key: &str, message: &str) -> Fault {
    (key.to_owned(), Problem::Refused(message.to_owned()))
}

/// The protocol versions from `min_version` to `max_version` (TLS12 to TLS13 by
/// default, as in exporter-toolkit).
fn versions(
    t: &RawTls,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<&'static SupportedProtocolVersion>, Fault> {
    let max = t.max_version.unwrap_or(TlsVersion::TLS13);
    if max < TlsVersion::TLS12 {
        return Err(missing(
            "tls_server_config.max_version",
            &format!("{max:?} is refused: rustls speaks TLS 1.2 and 1.3 only"),
        ));
    }
    let mut min = t.min_version.unwrap_or(TlsVersion::TLS12);
    if min < TlsVersion::TLS12 {
        warnings.push(Warning::new(
            "tls_server_config.min_version",
            format!("{min:?} raised to TLS12: rustls speaks TLS 1.2 and 1.3 only"),
        ));
        min = TlsVersion::TLS12;
    }
    if min > max {
        return Err(missing(
            "tls_server_config.min_version",
            &format!("{min:?} is above max_version {max:?}"),
        ));
    }
    let mut out = Vec::new();
    if min <= TlsVersion::TLS12 {
        out.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::TLS13 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// The provider's TLS 1.3 suites, then the named TLS 1.2 suites in the file's order.
fn cipher_suites(
    names: &[String],
    versions: &[&'static SupportedProtocolVersion],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<SupportedCipherSuite>, Fault> {
    let mut suites: Vec<SupportedCipherSuite> = default_provider()
        .cipher_suites
        .into_iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .collect();
    let mut tls12 = 0;
    for (i, name) in names.iter().enumerate() {
        let key = format!("tls_server_config.cipher_suites[{i}]");
        if TLS13_SUITES.contains(&name.as_str()) {
            continue;
        }
        if CBC_SUITES.contains(&name.as_str()) {
            return Err((
                key,
                Problem::Refused(format!(
                    "{name} is a CBC suite, which rustls does not implement; \
                     use an AEAD (GCM or CHACHA20_POLY1305) suite"
                )),
            ));
        }
        let Some(suite) = tls12_suite(name) else {
            return Err((
                key,
                Problem::Refused(format!(
                    "unknown cipher suite {name:?}; known: Go's tls.CipherSuites() names, \
                     e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                )),
            ));
        };
        if !suites.iter().any(|s| s.suite() == suite.suite()) {
            suites.push(suite);
            tls12 += 1;
        }
    }
    if tls12 == 0 && versions.contains(&&rustls::version::TLS12) {
        warnings.push(Warning::new(
            "tls_server_config.cipher_suites",
            "names no TLS 1.2 suite: TLS 1.2 clients cannot connect (as with Go)",
        ));
    }
    Ok(suites)
}

/// The client certificate verifier `client_auth_type`, the client CAs and
/// `client_allowed_sans` ask for; `None` asks for no certificate.
fn client_verifier(
    t: &RawTls,
    base: &Path,
    provider: &Arc<CryptoProvider>,
    files: &mut Vec<PathBuf>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, Fault> {
    use ClientAuthType as C;
    let mode = t.client_auth_type.unwrap_or(C::Unset);
    let ca_src = source(
        &t.client_ca,
        "tls_server_config.client_ca",
        &t.client_ca_file,
        "tls_server_config.client_ca_file",
        base,
    )?;
    let roots = match &ca_src {
        Some(src) => {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certificates(src, files)?);
            if added == 0 {
                return Err(src.fault(Problem::Refused("no usable CA certificate in it".into())));
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let sans = match &t.client_allowed_sans {
        Some(list) if list.is_empty() => {
            return Err(missing(
                "tls_server_config.client_allowed_sans",
                "is empty: no client could connect; leave it out to allow any",
            ));
        }
        other => other.clone(),
    };
    let asks = !matches!(mode, C::Unset | C::NoClientCert);
    if let (Some(src), false) = (&ca_src, asks) {
        return Err(missing(
            src.key(),
            "client CAs are configured without a client_auth_type that asks for a certificate",
        ));
    }
    if sans.is_some() && !asks {
        return Err(missing(
            "tls_server_config.client_allowed_sans",
            "needs a client_auth_type that asks for a certificate (exporter-toolkit ignores the list then)",
        ));
    }
    let verifier: Arc<dyn ClientCertVerifier> = match mode {
        C::Unset | C::NoClientCert => return Ok(None),
        C::RequestClientCert | C::RequireAnyClientCert => {
            warnings.push(Warning::new(
                "tls_server_config.client_auth_type",
                format!(
                    "{mode:?} does not verify client certificates: any certificate is \
                     accepted (use RequireAndVerifyClientCert)"
                ),
            ));
            if sans.is_some() {
                warnings.push(Warning::new(
                    "tls_server_config.client_allowed_sans",
                    "checked on an unverified certificate: anyone can make one with these names",
                ));
            }
            let hints = roots.as_ref().map(|r| r.subjects()).unwrap_or_default();
            let mandatory = mode == C::RequireAnyClientCert || sans.is_some();
            Arc::new(AnyCertVerifier::new(provider.clone(), mandatory, hints))
        }
        C::VerifyClientCertIfGiven | C::RequireAndVerifyClientCert => {
            let Some(roots) = roots else {
                return Err(missing(
                    "tls_server_config.client_ca_file",
                    &format!(
                        "{mode:?} needs client_ca_file or client_ca (the system trust store is not used)"
                    ),
                ));
            };
            let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            // A client without a certificate cannot pass a SAN check: Go's check fails
            // on it too.
            if mode == C::VerifyClientCertIfGiven && sans.is_none() {
                b = b.allow_unauthenticated();
            }
            b.build().map_err(|e| {
                let key = ca_src
                    .as_ref()
                    .map_or("tls_server_config.client_ca_file", |s| s.key());
                missing(key, &format!("cannot verify with these CAs: {e}"))
            })?
        }
    };
    Ok(Some(match sans {
        Some(allowed) => Arc::new(SanVerifier::new(verifier, allowed)),
        None => verifier,
    }))
}

/// A certificate's notAfter, Unix seconds.
///
/// # Errors
/// Why the certificate cannot be parsed.
pub fn not_after(cert: &CertificateDer<'_>) -> Result<i64, String> {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, c)| c.validity().not_after.timestamp())
        .map_err(|e| format!("the first certificate cannot be parsed: {e}"))
}

#[cfg(test)]
mod tests;
