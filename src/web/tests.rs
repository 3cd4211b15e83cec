//! The schema, loading and its refusals, and path resolution.

/// The docs table against the schema.
mod docs;
pub(crate) mod pki;

use super::schema::{self, ClientAuthType, GoDuration, TlsVersion};
use super::{Error, Problem, WebConfig};
use pki::pki;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// A directory with the test PKI's server and CA files and a config file `web.yml`.
pub(crate) struct Site {
    pub(crate) dir: tempfile::TempDir,
}

impl Site {
    pub(crate) fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        pki().copy_to(
            dir.path(),
            &[
                "server.crt",
                "server.key",
                "ca.crt",
                "ca2.crt",
                "client.key",
                "rsa.crt",
                "rsa.key",
                "server-sec1.key",
            ],
        );
        Site { dir }
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join("web.yml")
    }

    pub(crate) fn write(&self, yaml: &str) -> PathBuf {
        std::fs::write(self.config(), yaml).unwrap();
        self.config()
    }

    pub(crate) fn load(&self, yaml: &str) -> Result<WebConfig, Error> {
        WebConfig::load(&self.write(yaml))
    }

    /// The error of `yaml`, asserting it names `key` and says `words`.
    fn refuses(&self, yaml: &str, key: &str, words: &str) -> Error {
        let err = self.load(yaml).expect_err(yaml);
        let text = err.to_string();
        assert_eq!(err.key, key, "{text}");
        assert!(text.contains(words), "{text:?} lacks {words:?}");
        assert!(text.contains("web.yml"), "{text:?} names no config file");
        assert!(!text.contains('\n'), "{text:?} is not one line");
        err
    }
}

const SERVER: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[test]
fn every_key_is_read() {
    let yaml = r#"
tls_server_config:
  cert: inline-cert
  key: inline-key
  client_ca: inline-ca
  cert_file: c.pem
  key_file: k.pem
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
  client_allowed_sans: [a.example, 10.0.0.1]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519, CurveP256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Content-Security-Policy: "default-src 'self'"
basic_auth_users:
  alice: $2y$04$abc
rate_limit:
  interval: 1s
  burst: 5
"#;
    let raw = schema::parse(yaml).unwrap();
    let t = raw.tls_server_config.unwrap();
    assert_eq!(t.cert.as_deref(), Some("inline-cert"));
    assert_eq!(t.key.as_deref(), Some("inline-key"));
    assert_eq!(t.client_ca.as_deref(), Some("inline-ca"));
    assert_eq!(t.cert_file.as_deref(), Some("c.pem"));
    assert_eq!(t.key_file.as_deref(), Some("k.pem"));
    assert_eq!(
        t.client_auth_type,
        Some(ClientAuthType::RequireAndVerifyClientCert)
    );
    assert_eq!(t.client_ca_file.as_deref(), Some("ca.pem"));
    assert_eq!(t.client_allowed_sans.unwrap(), ["a.example", "10.0.0.1"]);
    assert_eq!(t.min_version, Some(TlsVersion::TLS12));
    assert_eq!(t.max_version, Some(TlsVersion::TLS13));
    assert_eq!(
        t.cipher_suites.unwrap(),
        ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    );
    assert_eq!(t.prefer_server_cipher_suites, Some(false));
    assert_eq!(t.curve_preferences.unwrap(), ["X25519", "CurveP256"]);
    let h = raw.http_server_config.unwrap();
    assert_eq!(h.http2, Some(false));
    let headers = schema::headers(h.headers.as_ref()).unwrap();
    assert_eq!(
        headers,
        [
            (
                "Content-Security-Policy".to_owned(),
                "default-src 'self'".to_owned()
            ),
            ("X-Frame-Options".to_owned(), "deny".to_owned())
        ]
    );
    let users = raw.basic_auth_users.unwrap();
    assert_eq!(users["alice"].as_deref(), Some("$2y$04$abc"));
    let r = raw.rate_limit.unwrap();
    assert!(matches!(r.interval, Some(GoDuration::Text(ref s)) if s == "1s"));
    assert_eq!(r.burst, Some(5));
}

#[test]
fn every_client_auth_type_and_version_is_known() {
    for (name, want) in [
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
        ("\"\"", ClientAuthType::Unset),
    ] {
        let raw =
            schema::parse(&format!("tls_server_config:\n  client_auth_type: {name}\n")).unwrap();
        assert_eq!(
            raw.tls_server_config.unwrap().client_auth_type,
            Some(want),
            "{name}"
        );
    }
    for (name, want) in [
        ("TLS10", TlsVersion::TLS10),
        ("TLS11", TlsVersion::TLS11),
        ("TLS12", TlsVersion::TLS12),
        ("TLS13", TlsVersion::TLS13),
    ] {
        let raw = schema::parse(&format!("tls_server_config:\n  min_version: {name}\n")).unwrap();
        assert_eq!(raw.tls_server_config.unwrap().min_version, Some(want));
    }
}

/// Go's yaml.v2 reads YAML 1.1 booleans; so do we, in boolean positions only.
#[test]
fn yaml_1_1_booleans() {
    for (word, want) in [
        ("true", true),
        ("false", false),
        ("yes", true),
        ("no", false),
        ("on", true),
        ("off", false),
        ("y", true),
        ("n", false),
        ("Yes", true),
        ("NO", false),
        ("ON", true),
        ("Off", false),
        ("True", true),
        ("FALSE", false),
    ] {
        let raw = schema::parse(&format!(
            "http_server_config:\n  http2: {word}\ntls_server_config:\n  prefer_server_cipher_suites: {word}\n"
        ))
        .unwrap();
        assert_eq!(raw.http_server_config.unwrap().http2, Some(want), "{word}");
        assert_eq!(
            raw.tls_server_config.unwrap().prefer_server_cipher_suites,
            Some(want),
            "{word}"
        );
    }
    let (key, problem) = schema::parse("http_server_config:\n  http2: maybe\n").unwrap_err();
    assert_eq!(key, "http_server_config.http2");
    assert!(problem.to_string().contains("line 2"), "{problem}");
    // Strings stay strings: a user named `yes`, a header value `off`.
    let raw = schema::parse("basic_auth_users:\n  yes: on\n").unwrap();
    assert_eq!(raw.basic_auth_users.unwrap()["yes"].as_deref(), Some("on"));
}

#[test]
fn schema_refusals_name_the_key() {
    for (yaml, key, words) in [
        ("foo: 1\n", "foo", "unknown field `foo`"),
        (
            "tls_server_config:\n  cert_filse: x\n",
            "tls_server_config.cert_filse",
            "unknown field",
        ),
        (
            "http_server_config:\n  http3: true\n",
            "http_server_config.http3",
            "unknown field",
        ),
        (
            "rate_limit:\n  every: 1s\n",
            "rate_limit.every",
            "unknown field",
        ),
        (
            "tls_server_config:\n  client_auth_type: Sometimes\n",
            "tls_server_config.client_auth_type",
            "unknown client_auth_type \"Sometimes\"",
        ),
        (
            "tls_server_config:\n  min_version: TLS111\n",
            "tls_server_config.min_version",
            "unknown variant `TLS111`",
        ),
        (
            "tls_server_config:\n  max_version: SSL3\n",
            "tls_server_config.max_version",
            "unknown variant",
        ),
        (
            "tls_server_config:\n  cipher_suites: TLS_AES_128_GCM_SHA256\n",
            "tls_server_config.cipher_suites",
            "",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  cert_file: b\n",
            "tls_server_config.cert_file",
            "given twice",
        ),
        ("rate_limit:\n  burst: many\n", "rate_limit.burst", ""),
        ("- 1\n- 2\n", ".", ""),
        ("tls_server_config: [\n", "tls_server_config", "line 1"),
    ] {
        let (got, problem) = schema::parse(yaml).expect_err(yaml);
        assert_eq!(got, key, "{yaml:?}: {problem}");
        assert!(problem.to_string().contains(words), "{yaml:?}: {problem}");
    }
}

#[test]
fn empty_and_null_sections_are_defaults() {
    let site = Site::new();
    for yaml in [
        "",
        "# nothing\n",
        "tls_server_config:\nhttp_server_config:\n",
        "tls_server_config: {}\n",
    ] {
        let c = site.load(yaml).unwrap();
        assert!(
            c.tls.is_none() && c.auth.is_none() && c.rate_limit.is_none(),
            "{yaml:?}"
        );
        assert!(c.http2, "http2 defaults to true");
        assert_eq!(c.files, [site.config()]);
    }
    // `client_auth_type: ""` is Go's zero value: it does not turn TLS on.
    let c = site
        .load("tls_server_config:\n  client_auth_type: \"\"\n  cert_file: \"\"\n")
        .unwrap();
    assert!(c.tls.is_none());
}

#[test]
fn header_refusals_name_the_header() {
    let site = Site::new();
    site.refuses(
        "http_server_config:\n  headers:\n    Server: nginx\n",
        "http_server_config.headers.Server",
        "cannot be configured",
    );
    site.refuses(
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "http_server_config.headers.X-Frame-Options",
        "not one of deny, sameorigin",
    );
    site.refuses(
        "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
        "http_server_config.headers.X-Content-Type-Options",
        "nosniff",
    );
    site.refuses(
        "http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\r\\nSet-Cookie: a\"\n",
        "http_server_config.headers.X-XSS-Protection",
        "printable ASCII",
    );
    let c = site
        .load("http_server_config:\n  headers:\n    Strict-Transport-Security: \"\"\n    X-Frame-Options:\n")
        .unwrap();
    assert!(
        c.headers.is_empty(),
        "blank headers are left out: {:?}",
        c.headers
    );
}

#[test]
fn load_refusals_name_the_key_and_the_file() {
    let site = Site::new();
    let missing = site.refuses(
        "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
        "tls_server_config.cert_file",
        "nope.crt: cannot read it",
    );
    assert!(matches!(missing.problem, Problem::InFile { .. }));
    site.refuses(
        "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
        "tls_server_config.cert_file",
        "no PEM CERTIFICATE",
    );
    site.refuses(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n",
        "tls_server_config.key_file",
        "no private key",
    );
    site.refuses(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
        "tls_server_config.key_file",
        "does not belong to the certificate of cert_file",
    );
    site.refuses(
        "tls_server_config:\n  cert_file: server.crt\n",
        "tls_server_config.key_file",
        "missing one of key or key_file",
    );
    site.refuses(
        "tls_server_config:\n  key_file: server.key\n",
        "tls_server_config.cert_file",
        "missing one of cert or cert_file",
    );
    site.refuses(
        &format!("{SERVER}  cert: x\n"),
        "tls_server_config.cert_file",
        "either cert_file or cert",
    );
    std::fs::write(
        site.dir.path().join("garbage.key"),
        "-----BEGIN PRIVATE KEY-----\n!!\n",
    )
    .unwrap();
    site.refuses(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: garbage.key\n",
        "tls_server_config.key_file",
        "garbage.key",
    );
    site.refuses(
        "basic_auth_users:\n  alice: secret\n",
        "basic_auth_users.alice",
        "not a bcrypt hash",
    );
    site.refuses(
        "basic_auth_users:\n  bob:\n",
        "basic_auth_users.bob",
        "empty",
    );
    site.refuses(
        "rate_limit:\n  interval: 1 second\n",
        "rate_limit.interval",
        "not a Go duration",
    );
    site.refuses(
        "rate_limit:\n  interval: -1s\n",
        "rate_limit.interval",
        "negative",
    );
    site.refuses(
        "rate_limit:\n  interval: 1s\n  burst: -1\n",
        "rate_limit.burst",
        "-1",
    );
}

#[test]
fn tls_refusals_name_the_key() {
    let site = Site::new();
    for (extra, key, words) in [
        (
            "  max_version: TLS11\n",
            "tls_server_config.max_version",
            "TLS11 is refused",
        ),
        (
            "  min_version: TLS13\n  max_version: TLS12\n",
            "tls_server_config.min_version",
            "above max_version",
        ),
        (
            "  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n",
            "tls_server_config.cipher_suites[1]",
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA is a CBC suite",
        ),
        (
            "  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256]\n",
            "tls_server_config.cipher_suites[0]",
            "unknown cipher suite",
        ),
        (
            "  curve_preferences: [X25519, CurveP521]\n",
            "tls_server_config.curve_preferences[1]",
            "CurveP521 is not available",
        ),
        (
            "  curve_preferences: [P256]\n",
            "tls_server_config.curve_preferences[0]",
            "unknown curve",
        ),
        (
            "  client_ca_file: ca.crt\n",
            "tls_server_config.client_ca_file",
            "without a client_auth_type",
        ),
        (
            "  client_ca: x\n  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file",
            "not both",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file",
            "needs client_ca_file or client_ca",
        ),
        (
            "  client_auth_type: VerifyClientCertIfGiven\n",
            "tls_server_config.client_ca_file",
            "needs client_ca_file or client_ca",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
            "tls_server_config.client_ca_file",
            "no PEM CERTIFICATE",
        ),
        (
            "  client_allowed_sans: [a]\n",
            "tls_server_config.client_allowed_sans",
            "needs a client_auth_type",
        ),
        (
            "  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: []\n",
            "tls_server_config.client_allowed_sans",
            "is empty",
        ),
    ] {
        site.refuses(&format!("{SERVER}{extra}"), key, words);
    }
}

#[test]
fn accepted_but_changed_is_warned() {
    let site = Site::new();
    let c = site
        .load(&format!("{SERVER}  min_version: TLS10\n"))
        .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].key, "tls_server_config.min_version");
    assert!(c.warnings[0].message.contains("raised to TLS12"));
    let c = site
        .load(&format!(
            "{SERVER}  cipher_suites: [TLS_AES_256_GCM_SHA384]\n"
        ))
        .unwrap();
    assert!(
        c.warnings[0].message.contains("no TLS 1.2 suite"),
        "{:?}",
        c.warnings
    );
    let c = site
        .load(&format!(
            "{SERVER}  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [x]\n"
        ))
        .unwrap();
    let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tls_server_config.client_auth_type",
            "tls_server_config.client_allowed_sans"
        ]
    );
    let c = site
        .load("rate_limit:\n  interval: 1000\n  burst: 0\n")
        .unwrap();
    let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["rate_limit.interval", "rate_limit.burst"]);
}

/// Paths are relative to the config file's directory, as in exporter-toolkit; absolute
/// paths stay as written.
#[test]
fn paths_are_relative_to_the_config_file() {
    let site = Site::new();
    let sub = site.dir.path().join("conf");
    std::fs::create_dir(&sub).unwrap();
    let config = sub.join("web.yml");
    let abs_key = site.dir.path().join("server.key");
    std::fs::write(
        &config,
        format!(
            "tls_server_config:\n  cert_file: ../server.crt\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ../ca.crt\n",
            abs_key.display()
        ),
    )
    .unwrap();
    // From another working directory: the process's own does not matter.
    let c = WebConfig::load(&config).unwrap();
    assert_eq!(
        c.files,
        [
            config.clone(),
            sub.join("../server.crt"),
            abs_key,
            sub.join("../ca.crt")
        ]
    );
    assert!(c.tls.is_some());
    assert_eq!(
        super::resolve(Path::new("/etc/web"), "/abs/x"),
        PathBuf::from("/abs/x")
    );
    assert_eq!(
        super::resolve(Path::new("/etc/web"), "x/y"),
        PathBuf::from("/etc/web/x/y")
    );
    assert_eq!(super::resolve(Path::new(""), "x"), PathBuf::from("x"));
}

#[test]
fn a_missing_or_huge_config_is_refused() {
    let site = Site::new();
    let err = WebConfig::load(&site.dir.path().join("absent.yml")).unwrap_err();
    assert_eq!(err.key, "");
    assert!(
        err.to_string().contains("absent.yml: cannot read it"),
        "{err}"
    );
    let big = site.dir.path().join("big.yml");
    std::fs::write(&big, vec![b'#'; (super::MAX_FILE_BYTES + 1) as usize]).unwrap();
    assert!(
        WebConfig::load(&big)
            .unwrap_err()
            .to_string()
            .contains("larger than")
    );
    std::fs::write(site.config(), b"tls_server_config: \xff\n").unwrap();
    assert!(
        WebConfig::load(&site.config())
            .unwrap_err()
            .to_string()
            .contains("not UTF-8")
    );
}

/// A key given twice is named, and the message speaks of the file, not of the parser.
#[test]
fn test_issue_12_a_key_given_twice_is_named() {
    let site = Site::new();
    let err = site.refuses(
        "basic_auth_users:\n  alice: x\n  alice: y\n",
        "basic_auth_users.alice",
        "given twice at line 3",
    );
    assert!(!err.to_string().contains("DuplicateKeyPolicy"), "{err}");
    site.refuses(
        "rate_limit: {}\nrate_limit: {}\n",
        "rate_limit",
        "given twice",
    );
}

/// A FIFO or a device named by mistake is refused at once, not waited on (a reload runs
/// while the server serves).
#[test]
fn test_issue_12_a_fifo_or_a_device_is_refused_without_blocking() {
    let site = Site::new();
    let fifo = site.dir.path().join("key.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    let yaml = "tls_server_config:\n  cert_file: server.crt\n  key_file: key.fifo\n";
    site.refuses(yaml, "tls_server_config.key_file", "not a regular file");
    let yaml = "tls_server_config:\n  cert_file: /dev/zero\n  key_file: server.key\n";
    site.refuses(yaml, "tls_server_config.cert_file", "not a regular file");
    let err = WebConfig::load(&fifo).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

proptest! {
    /// The parser never panics, on any text or on YAML-looking noise.
    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let _ = schema::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_yaml_noise(text in "[a-z_:\\- \n\t\\[\\]{}&*!|>'\"#,.0-9%@`?]{0,200}") {
        let _ = schema::parse(&text);
        let _ = schema::parse(&format!("tls_server_config:\n  {text}"));
    }
}
