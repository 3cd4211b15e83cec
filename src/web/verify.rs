//! Client certificate verifiers rustls does not ship: Go's "any certificate" modes and
//! exporter-toolkit's subject alternative name check.
//!
//! Go's `RequestClientCert` and `RequireAnyClientCert` accept any certificate chain
//! without verifying it. A verifier that returned success everywhere would also skip the
//! handshake signature, and then a client could present anyone's certificate without
//! its private key. [`AnyCertVerifier`] accepts any chain but checks the signature with
//! the provider's algorithms, as Go does.
//!
//! `client_allowed_sans` ([`SanVerifier`]) runs after the inner verifier and compares,
//! as exporter-toolkit's `VerifyPeerCertificate` does, the leaf's DNS names, e-mail
//! addresses, IP addresses (in Go's spelling: an IPv4-mapped IPv6 address as IPv4) and
//! URIs, exactly (case-sensitive), with the list. One difference: URIs are compared as
//! written in the certificate, where Go compares its re-serialisation (`url.String()`),
//! which equals it for the URIs certificates carry (`spiffe://...`).

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use x509_parser::extensions::GeneralName;

/// Accepts any parsable client certificate, and checks that the client holds its key.
#[derive(Debug)]
pub struct AnyCertVerifier {
    /// Whose signature algorithms check the handshake signature.
    provider: Arc<CryptoProvider>,
    /// Whether a client without a certificate is refused (`RequireAnyClientCert`).
    mandatory: bool,
    /// CA names sent with the certificate request (the client CAs, when given), so a
    /// client with several certificates can pick.
    hints: Vec<DistinguishedName>,
}

impl AnyCertVerifier {
    /// A verifier signing with `provider`'s algorithms.
    pub fn new(
        provider: Arc<CryptoProvider>,
        mandatory: bool,
        hints: Vec<DistinguishedName>,
    ) -> AnyCertVerifier {
        AnyCertVerifier {
            provider,
            mandatory,
            hints,
        }
    }
}

impl ClientCertVerifier for AnyCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        // Go parses what it does not verify; so do we, so garbage is refused.
        x509_parser::parse_x509_certificate(end_entity.as_ref())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Another verifier, then the leaf must carry one of the allowed SANs.
#[derive(Debug)]
pub struct SanVerifier {
    /// Verifies the chain and the signatures.
    inner: Arc<dyn ClientCertVerifier>,
    /// `client_allowed_sans`.
    allowed: Vec<String>,
}

impl SanVerifier {
    /// `inner`, then a check against `allowed`.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, allowed: Vec<String>) -> SanVerifier {
        SanVerifier { inner, allowed }
    }
}

impl ClientCertVerifier for SanVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        // A client without a certificate has no SAN to match.
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if sans.iter().any(|san| self.allowed.contains(san)) {
            Ok(verified)
        } else {
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The SANs exporter-toolkit compares, in Go's spelling: DNS names, e-mail addresses,
/// IP addresses and URIs (other kinds, such as directory names, are not compared).
///
/// # Errors
/// The certificate or its SAN extension cannot be parsed.
pub fn subject_alt_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    let Some(ext) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                out.push((*s).to_owned());
            }
            GeneralName::IPAddress(bytes) => {
                if let Some(ip) = ip_string(bytes) {
                    out.push(ip);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// An IP SAN as Go's `net.IP.String()` spells it: an IPv4-mapped IPv6 address as IPv4.
fn ip_string(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests;
