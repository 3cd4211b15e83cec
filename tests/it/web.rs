//! Issue 12: `--web.config.file` with real clients. Certificates are made by the test with
//! the `openssl` CLI (SANs `IP:127.0.0.1` and `DNS:localhost`); requests go through curl,
//! `openssl s_client` and Python's `ssl`, all on loopback.

// The unit tests' certificates, shared; these tests use part of it.
#[allow(dead_code)]
#[path = "../../src/web/tests/pki.rs"]
mod pki;

use crate::util::{Server, python};
use pki::pki;

/// The test certificates, for the other test modules.
pub(crate) fn certificates() -> &'static pki::Pki {
    pki()
}
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A bcrypt hash of `password`, of the lowest cost unless told.
fn hash(password: &str, cost: u32) -> String {
    bcrypt::hash(password, cost).unwrap()
}

/// The TLS part of a config serving `server.crt` from `dir` (copied there).
fn tls_config(dir: &Path, extra: &str) -> String {
    pki().copy_to(dir, &["server.crt", "server.key", "ca.crt"]);
    format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("web.yml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A server of an empty directory with the web config at `config`.
fn serve(dir: &Path, config: &str, more: &[&str]) -> Server {
    let data = dir.join("mp");
    std::fs::create_dir_all(&data).unwrap();
    let mut args = vec!["--dir", data.to_str().unwrap(), "--web.config.file", config];
    args.extend_from_slice(more);
    Server::start(&args)
}

/// What curl got: its exit code, the status (0 if none) and the body.
struct Curl {
    code: i32,
    status: u16,
    body: String,
}

/// curl against the server over HTTPS, trusting the test CA, with `args`.
fn curl(server: &Server, path: &str, args: &[&str]) -> Curl {
    let url = format!("https://{}{path}", server.addr);
    curl_url(&url, args)
}

fn curl_url(url: &str, args: &[&str]) -> Curl {
    let ca = pki().path("ca.crt");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", ca.to_str().unwrap()])
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curl {
        code: out.status.code().unwrap_or(-1),
        status: status.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

/// `openssl s_client` against the server with `args`: its combined output.
fn s_client(server: &Server, args: &str) -> String {
    let script = format!(
        "openssl s_client -connect {} -servername localhost {args} </dev/null 2>&1",
        server.addr
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SHA-256 fingerprint of the certificate a new connection is served.
fn served_fingerprint(server: &Server) -> String {
    let script = format!(
        "openssl s_client -connect {} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        server.addr
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Acceptance 1: curl over TLS 1.2 and 1.3 with good, wrong and no credentials; plain
/// HTTP to the TLS port; the probe listener; the response headers.
#[test]
fn test_issue_12_tls_and_basic_auth_with_curl() {
    let tmp = tempfile::tempdir().unwrap();
    let users = format!(
        "basic_auth_users:\n  alice: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        hash("s3cret", 4)
    );
    let config = write_config(tmp.path(), &tls_config(tmp.path(), &users));
    let probe_port = crate::util::free_port();
    let probe = format!("127.0.0.1:{probe_port}");
    let s = serve(tmp.path(), &config, &["--web.probe-address", &probe]);
    for version in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let mut args = vec!["-u", "alice:s3cret", "-D", "-"];
        args.extend_from_slice(&version);
        let ok = curl(&s, "/metrics", &args);
        assert_eq!((ok.code, ok.status), (0, 200), "{version:?}: {}", ok.body);
        assert!(
            ok.body.contains("multiproc_exporter_build_info"),
            "{}",
            ok.body
        );
        assert!(ok.body.contains("x-frame-options: deny"), "{}", ok.body);
    }
    let wrong = curl(&s, "/metrics", &["-u", "alice:nope", "-D", "-"]);
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(
        wrong
            .body
            .to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{}",
        wrong.body
    );
    assert_eq!(curl(&s, "/metrics", &[]).status, 401);
    assert_eq!(
        curl(&s, "/healthz", &[]).status,
        401,
        "every path is behind auth"
    );
    assert_eq!(curl(&s, "/metrics", &["-u", "bob:s3cret"]).status, 401);
    // Plain HTTP to the TLS port: Go's answer, never a page.
    let plain = curl_url(
        &format!("http://{}/metrics", s.addr),
        &["-u", "alice:s3cret"],
    );
    assert_eq!(plain.status, 400, "{}", plain.body);
    assert!(
        plain.body.contains("HTTP request to an HTTPS server"),
        "{}",
        plain.body
    );
    // The probe listener: plain HTTP, health only, no credentials.
    let health = crate::util::request("GET", &format!("http://{probe}/healthz"), &[]);
    assert_eq!(health.status, 200);
    let ready = crate::util::request("GET", &format!("http://{probe}/readyz"), &[]);
    assert_eq!(ready.status, 200);
    let metrics = crate::util::request("GET", &format!("http://{probe}/metrics"), &[]);
    assert_eq!(metrics.status, 404, "the probe listener serves no metrics");
    // docs/configuration.md: the healthcheck command probes the probe listener.
    let check = Command::new(crate::util::BIN)
        .args(["healthcheck", "--url", &format!("http://{probe}/healthz")])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let own = curl(&s, "/metrics", &["-u", "alice:s3cret"]).body;
    // docs/operations.md documents what a scrape under a web configuration adds.
    let plain = Server::start(&["--dir", tmp.path().join("mp").to_str().unwrap()]);
    let plain = crate::docs::exposed_self_metrics(&plain.get("/metrics", &[]).text());
    let added: std::collections::BTreeMap<_, _> = crate::docs::exposed_self_metrics(&own)
        .into_iter()
        .filter(|(k, _)| !plain.contains_key(k))
        .collect();
    assert_eq!(added, crate::docs::documented_self_metrics(true));
    for line in [
        "multiproc_exporter_tls_handshake_failures_total{reason=\"plain_http\"} 1",
        "multiproc_exporter_http_requests_refused_total{reason=\"unauthorized\"} 4",
        "multiproc_exporter_web_config_last_reload_successful 1",
    ] {
        assert!(own.contains(line), "{line} in\n{own}");
    }
    let not_after = crate::util::value(
        &own,
        "multiproc_exporter_tls_certificate_not_after_timestamp_seconds",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let days = (not_after.expect("the expiry metric") - now) / 86400.0;
    assert!(
        (29.0..=31.0).contains(&days),
        "the test certificate lives 30 days: {days}"
    );
}

/// Acceptance 1: `min_version: TLS13` refuses TLS 1.2; TLS 1.1 is refused by the server
/// itself with a protocol_version alert (curl would refuse 1.1 on its own side).
#[test]
fn test_issue_12_minimum_version_and_tls11_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        &tls_config(tmp.path(), "  min_version: TLS13\n"),
    );
    let s = serve(tmp.path(), &config, &[]);
    assert_eq!(curl(&s, "/healthz", &["--tlsv1.3"]).status, 200);
    let old = curl(&s, "/healthz", &["--tlsv1.2", "--tls-max", "1.2"]);
    assert_ne!(
        old.code, 0,
        "TLS 1.2 must be refused under min_version TLS13"
    );
    assert_eq!(old.status, 0);

    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &tls_config(tmp.path(), ""));
    let s = serve(tmp.path(), &config, &[]);
    let out = s_client(&s, "-tls1_1 -cipher DEFAULT@SECLEVEL=0");
    assert!(
        out.contains("alert protocol version"),
        "the server answers a TLS 1.1 hello with protocol_version:\n{out}"
    );
    let tls12 = s_client(&s, "-tls1_2");
    assert!(
        tls12.contains("TLSv1.2"),
        "TLS 1.2 is served by default:\n{tls12}"
    );
}

/// Acceptance 2: `RequireAndVerifyClientCert` refuses a client without a certificate and
/// one signed by another CA, accepts the right one; `client_allowed_sans` is enforced.
#[test]
fn test_issue_12_mutual_tls_and_allowed_sans() {
    let p = pki();
    let cert = |n: &str| p.path(&format!("{n}.crt")).to_str().unwrap().to_owned();
    let key = |n: &str| p.path(&format!("{n}.key")).to_str().unwrap().to_owned();
    for (sans, client_ok) in [
        (None, true),
        (Some("client.example"), true),
        (Some("nobody.example"), false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut extra =
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n".to_owned();
        if let Some(san) = sans {
            extra.push_str(&format!("  client_allowed_sans: [\"{san}\"]\n"));
        }
        let config = write_config(tmp.path(), &tls_config(tmp.path(), &extra));
        let s = serve(tmp.path(), &config, &[]);
        let none = curl(&s, "/healthz", &[]);
        assert_eq!(none.status, 0, "no client certificate: the handshake fails");
        let other = curl(
            &s,
            "/healthz",
            &["--cert", &cert("client2"), "--key", &key("client2")],
        );
        assert_eq!(other.status, 0, "a client of another CA is refused");
        let right = curl(
            &s,
            "/healthz",
            &["--cert", &cert("client"), "--key", &key("client")],
        );
        let expect = if client_ok { 200 } else { 0 };
        assert_eq!(
            right.status, expect,
            "allowed SANs {sans:?}: {}",
            right.body
        );
        let metrics = curl(
            &s,
            "/metrics",
            &["--cert", &cert("client"), "--key", &key("client")],
        );
        if client_ok {
            let refused = crate::util::value(
                &metrics.body,
                "multiproc_exporter_tls_handshake_failures_total{reason=\"refused\"}",
            );
            assert_eq!(refused, Some(2.0), "{}", metrics.body);
        }
    }
}

/// Acceptance 3: files replaced, and a Kubernetes `..data` symlink swapped, while
/// serving: new connections get the new certificate, an open connection keeps its own
/// and its next scrape completes; a file that turns invalid keeps the last good one.
#[test]
fn test_issue_12_certificate_rotation() {
    let p = pki();
    let (old, new) = (
        fingerprint(&p.path("server.crt")),
        fingerprint(&p.path("server-next.crt")),
    );
    assert_ne!(old, new);

    // Files replaced in place (a rename over each, as configuration tools do).
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &tls_config(tmp.path(), ""));
    let s = serve(tmp.path(), &config, &[]);
    assert_eq!(served_fingerprint(&s), old);
    let open = KeptConnection::open(&s);
    for (from, to) in [
        ("server-next.crt", "server.crt"),
        ("server-next.key", "server.key"),
    ] {
        let staged = tmp.path().join(format!("{to}.new"));
        std::fs::copy(p.path(from), &staged).unwrap();
        std::fs::rename(&staged, tmp.path().join(to)).unwrap();
    }
    wait_until("the replaced certificate", || served_fingerprint(&s) == new);
    assert_eq!(
        open.scrape(),
        old,
        "the open connection keeps its certificate and is served"
    );
    // Garbage in the config: the last good configuration stays, and says so.
    std::fs::write(&config, "tls_server_config: [not, a, map\n").unwrap();
    wait_until("the failed reload", || {
        let body = curl(&s, "/metrics", &[]).body;
        body.contains("multiproc_exporter_web_config_last_reload_successful 0")
            && body.contains("multiproc_exporter_web_config_reloads_total{result=\"failure\"} 1")
    });
    assert_eq!(
        served_fingerprint(&s),
        new,
        "still serving the last good certificate"
    );
    assert!(s.log_text().contains("web.yml"), "the log names the file");

    // A Secret volume: every file a symlink into ..data, which is swapped atomically.
    let tmp = tempfile::tempdir().unwrap();
    let vol = tmp.path().join("secret");
    let first = vol.join("..2026_12_01_a");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::copy(p.path("server.crt"), first.join("tls.crt")).unwrap();
    std::fs::copy(p.path("server.key"), first.join("tls.key")).unwrap();
    std::fs::write(
        first.join("web.yml"),
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_12_01_a", vol.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key", "web.yml"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), vol.join(f)).unwrap();
    }
    let config = vol.join("web.yml");
    let s = serve(tmp.path(), config.to_str().unwrap(), &[]);
    assert_eq!(served_fingerprint(&s), old);
    let open = KeptConnection::open(&s);
    let second = vol.join("..2026_12_01_b");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::copy(p.path("server-next.crt"), second.join("tls.crt")).unwrap();
    std::fs::copy(p.path("server-next.key"), second.join("tls.key")).unwrap();
    std::fs::copy(first.join("web.yml"), second.join("web.yml")).unwrap();
    std::os::unix::fs::symlink("..2026_12_01_b", vol.join("..data_tmp")).unwrap();
    std::fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    wait_until("the swapped Secret", || served_fingerprint(&s) == new);
    assert_eq!(open.scrape(), old);
}

/// A TLS connection opened before a rotation, by Python's `ssl` (keep-alive): its
/// certificate, and a scrape on it later.
struct KeptConnection {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

const KEEP_CONNECTION: &str = r#"
import hashlib, http.client, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
def scrape():
    c.request("GET", "/healthz")
    r = c.getresponse()
    assert r.status == 200, r.status
    r.read()
    der = c.sock.getpeercert(binary_form=True)
    print(hashlib.sha256(der).hexdigest(), flush=True)
scrape()
for _ in sys.stdin:
    scrape()
"#;

impl KeptConnection {
    fn open(s: &Server) -> KeptConnection {
        use std::io::BufRead;
        let mut child = Command::new(python())
            .args([
                "-c",
                KEEP_CONNECTION,
                "127.0.0.1",
                &s.addr.port().to_string(),
            ])
            .arg(pki().path("ca.crt"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert_eq!(first.trim().len(), 64, "connected: {first:?}");
        KeptConnection {
            child,
            stdin,
            stdout,
        }
    }

    /// Scrapes on the open connection; the fingerprint of its certificate, in the
    /// spelling of `openssl x509 -fingerprint -sha256`.
    fn scrape(mut self) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.stdin).unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let hex = line.trim().to_ascii_uppercase();
        assert_eq!(hex.len(), 64, "the kept connection scraped: {line:?}");
        let pairs: Vec<&str> = (0..32).map(|i| &hex[2 * i..2 * i + 2]).collect();
        format!("sha256 Fingerprint={}", pairs.join(":"))
    }
}

/// Acceptance 5: every bad config exits 1 at start with one message naming the key, and
/// `--web.config.check` says the same; a good one passes the check with exit 0.
#[test]
fn test_issue_12_bad_configs_exit_1_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    pki().copy_to(tmp.path(), &["server.crt", "server.key", "client.key"]);
    std::fs::write(tmp.path().join("garbage.key"), "not a key\n").unwrap();
    let tls = "tls_server_config:\n  cert_file: server.crt\n";
    let cases = [
        (
            "unknown key",
            format!("{tls}  key_file: server.key\n  cert_filse: x\n"),
            "tls_server_config.cert_filse",
        ),
        (
            "missing file",
            format!("{tls}  key_file: missing.key\n"),
            "tls_server_config.key_file",
        ),
        (
            "unreadable key",
            format!("{tls}  key_file: garbage.key\n"),
            "tls_server_config.key_file",
        ),
        (
            "key of another cert",
            format!("{tls}  key_file: client.key\n"),
            "tls_server_config.key_file",
        ),
        (
            "bad enum",
            format!("{tls}  key_file: server.key\n  client_auth_type: Sometimes\n"),
            "tls_server_config.client_auth_type",
        ),
        (
            "bad version",
            format!("{tls}  key_file: server.key\n  max_version: TLS11\n"),
            "tls_server_config.max_version",
        ),
        (
            "CBC suite",
            format!(
                "{tls}  key_file: server.key\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n"
            ),
            "tls_server_config.cipher_suites",
        ),
        (
            "bad bcrypt hash",
            "basic_auth_users:\n  alice: plaintext\n".to_owned(),
            "basic_auth_users.alice",
        ),
        (
            "unknown top key",
            "tls_config: {}\n".to_owned(),
            "tls_config",
        ),
    ];
    let data = tmp.path().join("mp");
    std::fs::create_dir_all(&data).unwrap();
    for (what, text, key) in cases {
        let config = write_config(tmp.path(), &text);
        for check in [false, true] {
            let mut cmd = Command::new(crate::util::BIN);
            cmd.args([
                "--dir",
                data.to_str().unwrap(),
                "--web.listen-address",
                "127.0.0.1:0",
            ])
            .args(["--web.config.file", &config]);
            if check {
                cmd.arg("--web.config.check");
            }
            let out = cmd.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what} (check {check}): {err}");
            assert!(
                err.contains(key),
                "{what} (check {check}): names {key}: {err}"
            );
            assert!(err.contains("web.yml"), "{what}: names the file: {err}");
            let errors = err.lines().filter(|l| l.contains("ERROR")).count();
            assert_eq!(errors, 1, "{what}: one message: {err}");
        }
    }
    let good = write_config(tmp.path(), &format!("{tls}  key_file: server.key\n"));
    // A check needs no directory.
    let out = Command::new(crate::util::BIN)
        .args(["--web.config.file", &good, "--web.config.check"])
        .env_remove("PROMETHEUS_MULTIPROC_DIR")
        .env_remove("prometheus_multiproc_dir")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("good: TLS"));
}

/// Acceptance 6: a flood of wrong passwords (distinct ones, so none is cached) leaves
/// authorised scrapes within 2x of their unflooded p50: bcrypt runs one at a time off
/// the async threads, beyond 8 waiting checks a request is answered 429 at once, and
/// the scrapers' credentials stay cached.
#[test]
fn test_issue_12_wrong_password_flood_leaves_scrapes_their_pace() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mp");
    std::fs::create_dir_all(&data).unwrap();
    crate::util::wide_directory(&data, 5_000);
    let config = write_config(
        tmp.path(),
        &format!("basic_auth_users:\n  prom: {}\n", hash("right", 10)),
    );
    let s = Server::start(&[
        "--dir",
        data.to_str().unwrap(),
        "--web.config.file",
        &config,
    ]);
    let auth = format!("Basic {}", base64_encode(b"prom:right"));
    let scrape = || {
        let t = Instant::now();
        let r = s.get("/metrics", &[("authorization", &auth)]);
        assert_eq!(r.status, 200);
        t.elapsed()
    };
    let p50 = |n: usize| {
        let mut t: Vec<Duration> = (0..n).map(|_| scrape()).collect();
        t.sort();
        t[n / 2]
    };
    scrape();
    // Other tests share the machine: a try whose figures the neighbours disturbed is
    // taken again, up to three times; a flood that really slows scrapes fails all three.
    let mut tries = Vec::new();
    for _ in 0..3 {
        let calm = p50(30);
        let (flooded, sent) = under_flood(&s.url("/metrics"), || p50(30));
        assert!(sent > 50, "the flood ran: {sent} requests");
        tries.push((calm, flooded, sent));
        if flooded <= calm * 2 {
            return;
        }
    }
    panic!(
        "p50 under a flood of wrong passwords more than 2x the calm one in every try (calm, flooded, requests): {tries:?}"
    );
}

/// Runs `measure` while [`FLOODERS`] clients send new wrong passwords to `url`: what it
/// measured, and how many wrong passwords were sent.
fn under_flood<T>(url: &str, measure: impl FnOnce() -> T) -> (T, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|i| {
            let (stop, url) = (stop.clone(), url.to_owned());
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let wrong = format!(
                        "Basic {}",
                        base64_encode(format!("prom:wrong-{i}-{sent}").as_bytes())
                    );
                    if let Ok(r) =
                        crate::util::try_request("GET", &url, &[("authorization", &wrong)])
                    {
                        assert!(matches!(r.status, 401 | 429), "{}", r.status);
                    }
                    sent += 1;
                    std::thread::sleep(FLOOD_PAUSE);
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let measured = measure();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    (measured, sent)
}

/// Clients sending wrong passwords, each a new one every [`FLOOD_PAUSE`] after its
/// answer: a bounded flood of at most 640 requests a second, each a distinct password
/// (none can be answered from the cache) of a cost-10 hash.
const FLOODERS: usize = 16;
const FLOOD_PAUSE: Duration = Duration::from_millis(25);

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `rate_limit` answers `429` once its bucket is empty, on plain HTTP too, and counts it;
/// `http_server_config.headers` go on every answer, a refusal included.
#[test]
fn test_issue_12_rate_limit_and_headers_without_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "rate_limit:\n  interval: 1h\n  burst: 3\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
    );
    let s = serve(tmp.path(), &config, &[]);
    let answers: Vec<_> = (0..4).map(|_| s.get("/healthz", &[])).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    for a in &answers {
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    }
}
