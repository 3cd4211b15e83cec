//! Handshakes in memory between the `ServerConfig` a web config builds and rustls
//! clients, with the test PKI's certificates (made by `openssl`).

use crate::web::WebConfig;
use crate::web::tests::Site;
use crate::web::tests::pki::pki;
use rustls::client::ResolvesClientCert;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection,
    SignatureScheme,
};
use std::sync::Arc;

/// Which side failed a handshake, and why (shown when a test fails).
#[derive(Debug)]
enum Failed {
    #[allow(dead_code)]
    Client(rustls::Error),
    Server(rustls::Error),
}

/// Runs a handshake to its end; the negotiated version on success.
fn handshake(server: Arc<ServerConfig>, client: ClientConfig) -> Result<ProtocolVersion, Failed> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name).map_err(Failed::Client)?;
    let mut s = ServerConnection::new(server).map_err(Failed::Server)?;
    for _ in 0..16 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().map_err(Failed::Server)?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().map_err(Failed::Client)?;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            return Ok(c.protocol_version().unwrap());
        }
    }
    panic!("handshake did not finish");
}

fn certs(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pki().path(name))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(pki().path(name)).unwrap()
}

/// A client trusting the test CA, speaking `versions`.
fn client(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs("ca.crt"));
    ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn anonymous(versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
    client(versions).with_no_client_auth()
}

/// A client presenting `name.crt` with the key of `key_name`.
fn presenting(
    cert: &str,
    key_name: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let signing = default_provider()
        .key_provider
        .load_private_key(key(key_name))
        .unwrap();
    let ck = Arc::new(CertifiedKey::new(certs(cert), signing));
    client(versions).with_client_cert_resolver(Arc::new(Always(ck)))
}

/// Presents one certificate whatever is asked, without checking that its key matches
/// (rustls' own builders check; a forger would not).
#[derive(Debug)]
struct Always(Arc<CertifiedKey>);

impl ResolvesClientCert for Always {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn server(site: &Site, extra: &str) -> Arc<ServerConfig> {
    let yaml =
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}");
    site.load(&yaml).unwrap().tls.unwrap().server
}

#[test]
fn serves_tls_1_2_and_1_3_by_default() {
    let site = Site::new();
    let s = server(&site, "");
    assert_eq!(
        handshake(s.clone(), anonymous(TLS13)).unwrap(),
        ProtocolVersion::TLSv1_3
    );
    assert_eq!(
        handshake(s.clone(), anonymous(TLS12)).unwrap(),
        ProtocolVersion::TLSv1_2
    );
    assert_eq!(
        handshake(s.clone(), anonymous(BOTH)).unwrap(),
        ProtocolVersion::TLSv1_3
    );
    assert!(
        s.ignore_client_order,
        "prefer_server_cipher_suites defaults to true"
    );
    let c = site
        .load("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
        .unwrap();
    let days = (c.cert_not_after().unwrap() - now() + 43_200) / 86_400;
    assert!(days == 30, "the certificate is valid 30 days: {days}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn versions_are_bounded() {
    let site = Site::new();
    let only13 = server(&site, "  min_version: TLS13\n");
    assert!(matches!(
        handshake(only13.clone(), anonymous(TLS12)),
        Err(Failed::Server(_))
    ));
    assert!(handshake(only13, anonymous(TLS13)).is_ok());
    let only12 = server(&site, "  max_version: TLS12\n");
    assert!(handshake(only12.clone(), anonymous(TLS13)).is_err());
    assert_eq!(
        handshake(only12, anonymous(BOTH)).unwrap(),
        ProtocolVersion::TLSv1_2
    );
    // Raised to TLS12, never below.
    let raised = server(&site, "  min_version: TLS10\n");
    assert_eq!(
        handshake(raised, anonymous(TLS12)).unwrap(),
        ProtocolVersion::TLSv1_2
    );
}

#[test]
fn cipher_suites_apply_to_tls_1_2_only() {
    let site = Site::new();
    let s = server(
        &site,
        "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256]\n  prefer_server_cipher_suites: no\n",
    );
    assert!(!s.ignore_client_order);
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut c = ClientConnection::new(Arc::new(anonymous(TLS12)), name).unwrap();
    let mut sc = ServerConnection::new(s.clone()).unwrap();
    pump(&mut c, &mut sc);
    assert_eq!(
        format!("{:?}", c.negotiated_cipher_suite().unwrap().suite()),
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
    );
    // Every TLS 1.3 suite stays.
    let tls13: Vec<_> = s
        .crypto_provider()
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .collect();
    assert_eq!(tls13.len(), 3);
    assert!(handshake(s, anonymous(TLS13)).is_ok());
}

fn pump(c: &mut ClientConnection, s: &mut ServerConnection) {
    for _ in 0..16 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().unwrap();
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets().unwrap();
        }
    }
}

#[test]
fn curve_preferences_choose_the_group() {
    let site = Site::new();
    let s = server(&site, "  curve_preferences: [CurveP384]\n");
    let groups: Vec<String> = s
        .crypto_provider()
        .kx_groups
        .iter()
        .map(|g| format!("{:?}", g.name()))
        .collect();
    assert_eq!(groups, ["secp384r1"]);
    for versions in [TLS12, TLS13] {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut c = ClientConnection::new(Arc::new(anonymous(versions)), name).unwrap();
        let mut sc = ServerConnection::new(s.clone()).unwrap();
        pump(&mut c, &mut sc);
        assert_eq!(
            format!("{:?}", c.negotiated_key_exchange_group().unwrap().name()),
            "secp384r1"
        );
    }
}

#[test]
fn key_encodings_and_inline_pem() {
    let site = Site::new();
    let sec1 = site
        .load("tls_server_config:\n  cert_file: server.crt\n  key_file: server-sec1.key\n")
        .unwrap();
    assert!(handshake(sec1.tls.unwrap().server, anonymous(BOTH)).is_ok());
    assert!(
        pki().read("rsa.key").contains("BEGIN RSA PRIVATE KEY"),
        "PKCS#1"
    );
    let rsa = site
        .load("tls_server_config:\n  cert_file: rsa.crt\n  key_file: rsa.key\n")
        .unwrap();
    assert!(handshake(rsa.tls.unwrap().server.clone(), anonymous(TLS12)).is_ok());
    let indent = |s: String| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let yaml = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_ca: |\n{}  client_auth_type: RequireAndVerifyClientCert\n",
        indent(pki().read("server.crt")),
        indent(pki().read("server.key")),
        indent(pki().read("ca.crt")),
    );
    let inline = site.load(&yaml).unwrap();
    assert_eq!(
        inline.files,
        [site.config()],
        "nothing but the config is read"
    );
    let s = inline.tls.unwrap().server;
    assert!(handshake(s.clone(), presenting("client.crt", "client.key", BOTH)).is_ok());
    assert!(handshake(s, anonymous(BOTH)).is_err());
}

fn mtls(site: &Site, mode: &str, extra: &str) -> Arc<ServerConfig> {
    server(
        site,
        &format!("  client_auth_type: {mode}\n  client_ca_file: ca.crt\n{extra}"),
    )
}

#[test]
fn require_and_verify_client_cert() {
    let site = Site::new();
    let s = mtls(&site, "RequireAndVerifyClientCert", "");
    for v in [TLS12, TLS13] {
        assert!(handshake(s.clone(), presenting("client.crt", "client.key", v)).is_ok());
        assert!(matches!(
            handshake(s.clone(), anonymous(v)),
            Err(Failed::Server(_))
        ));
        assert!(
            matches!(
                handshake(s.clone(), presenting("client2.crt", "client2.key", v)),
                Err(Failed::Server(_))
            ),
            "another CA's client"
        );
        assert!(handshake(s.clone(), presenting("selfsigned.crt", "selfsigned.key", v)).is_err());
    }
}

#[test]
fn verify_client_cert_if_given() {
    let site = Site::new();
    let s = mtls(&site, "VerifyClientCertIfGiven", "");
    assert!(handshake(s.clone(), anonymous(BOTH)).is_ok());
    assert!(handshake(s.clone(), presenting("client.crt", "client.key", BOTH)).is_ok());
    assert!(handshake(s, presenting("client2.crt", "client2.key", BOTH)).is_err());
}

#[test]
fn any_client_cert_modes_accept_any_chain_but_check_the_signature() {
    let site = Site::new();
    for (mode, anonymous_ok) in [("RequireAnyClientCert", false), ("RequestClientCert", true)] {
        for extra in ["", "  client_ca_file: ca.crt\n"] {
            let s = server(&site, &format!("  client_auth_type: {mode}\n{extra}"));
            for v in [TLS12, TLS13] {
                assert_eq!(
                    handshake(s.clone(), anonymous(v)).is_ok(),
                    anonymous_ok,
                    "{mode}"
                );
                assert!(
                    handshake(s.clone(), presenting("selfsigned.crt", "selfsigned.key", v)).is_ok(),
                    "{mode}"
                );
                assert!(
                    handshake(s.clone(), presenting("client2.crt", "client2.key", v)).is_ok(),
                    "{mode}"
                );
                // client.crt signed with another key: the client does not hold its key.
                let forged = handshake(s.clone(), presenting("client.crt", "client2.key", v));
                match forged {
                    Err(Failed::Server(e)) => assert!(
                        format!("{e:?}").contains("BadSignature")
                            || format!("{e:?}").contains("Signature"),
                        "{mode} {v:?}: {e:?}"
                    ),
                    other => panic!("{mode} {v:?}: a forged signature was accepted: {other:?}"),
                }
            }
        }
    }
}

#[test]
fn client_allowed_sans_match_every_kind() {
    let site = Site::new();
    for san in [
        "client.example",
        "ops@example.com",
        "spiffe://example/client",
        "10.0.0.7",
    ] {
        let s = mtls(
            &site,
            "RequireAndVerifyClientCert",
            &format!("  client_allowed_sans: [nope, {san:?}]\n"),
        );
        assert!(
            handshake(s, presenting("client.crt", "client.key", BOTH)).is_ok(),
            "{san}"
        );
    }
    for wrong in ["Client.Example", "client", "10.0.0.8", "spiffe://example"] {
        let s = mtls(
            &site,
            "RequireAndVerifyClientCert",
            &format!("  client_allowed_sans: [{wrong:?}]\n"),
        );
        assert!(
            matches!(
                handshake(s, presenting("client.crt", "client.key", BOTH)),
                Err(Failed::Server(_))
            ),
            "{wrong}"
        );
    }
    // A SAN check after chain verification: the right name from another CA fails.
    let s = mtls(
        &site,
        "VerifyClientCertIfGiven",
        "  client_allowed_sans: [other.example]\n",
    );
    assert!(handshake(s.clone(), presenting("client2.crt", "client2.key", BOTH)).is_err());
    // And a client without a certificate has no SAN to match, even "if given".
    assert!(handshake(s, anonymous(BOTH)).is_err());
    // Any-chain modes check the SANs of the unverified certificate.
    let s = server(
        &site,
        "  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [other.example]\n",
    );
    assert!(handshake(s.clone(), presenting("client2.crt", "client2.key", BOTH)).is_ok());
    assert!(handshake(s, presenting("client.crt", "client.key", BOTH)).is_err());
}

#[test]
fn no_client_cert_asks_for_none() {
    let site = Site::new();
    for mode in ["NoClientCert", "\"\""] {
        let c: WebConfig = site
            .load(&format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {mode}\n"))
            .unwrap();
        let s = c.tls.unwrap().server;
        assert!(handshake(s.clone(), anonymous(BOTH)).is_ok());
        // A client that has a certificate is not asked for it, and still connects.
        assert!(handshake(s, presenting("client.crt", "client.key", BOTH)).is_ok());
    }
}
