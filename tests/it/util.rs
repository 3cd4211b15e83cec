//! Shared helpers: the pinned Python reference, temp dirs and running the binary.

use serde_json::Value;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_multiproc-exporter");

/// The binary in a pid namespace of its own (as in a container: its pids are not the
/// writers'), for `Server::start_with`; needs root.
pub const BIN_IN_OWN_PID_NAMESPACE: &[&str] = &[
    "unshare",
    "--pid",
    "--fork",
    "--mount-proc",
    "--kill-child",
    BIN,
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of a virtualenv under `target/` with the pinned prometheus_client,
/// created on first use (guarded by a file lock so parallel test binaries agree).
pub fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let requirements = repo().join("tests/py/requirements.txt");
        let mut pins = fs::read_to_string(&requirements).expect("read tests/py/requirements.txt");
        // The dashboard generator's pin (deploy/grafana) is installed too.
        let grafana = repo().join("deploy/grafana/requirements.txt");
        pins.push_str(&fs::read_to_string(&grafana).expect("read deploy/grafana/requirements.txt"));
        // The shim is installed too; its sources are part of the stamp, so a change
        // reinstalls it. Bump the tag when the way of installing changes.
        pins.push_str("install: shim from a clean copy (v3)\n");
        let shim = repo().join("shim/python");
        for f in [
            "pyproject.toml",
            "multiproc_exporter/__init__.py",
            "multiproc_exporter/gunicorn.py",
            "multiproc_exporter/uwsgi.py",
        ] {
            pins.push_str(&fs::read_to_string(shim.join(f)).unwrap_or_default());
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyenv");
        fs::create_dir_all(venv.parent().unwrap()).unwrap();
        let lock = File::create(venv.with_extension("lock")).expect("create the venv lock");
        lock.lock().expect("lock the venv");
        let stamp = venv.join("pins.txt");
        let py = venv.join("bin/python");
        if fs::read_to_string(&stamp).ok().as_deref() != Some(pins.as_str()) {
            let base = std::env::var("MPE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
            let _ = fs::remove_dir_all(&venv);
            run_ok(
                Command::new(&base).args(["-m", "venv"]).arg(&venv),
                "create the virtualenv",
            );
            run_ok(
                Command::new(&py)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "-r",
                    ])
                    .arg(&requirements)
                    .arg("-r")
                    .arg(&grafana),
                "install the pinned prometheus_client, pytest, gunicorn, uwsgi and grafana-foundation-sdk",
            );
            // Install from a fresh copy: setuptools builds next to the sources and would
            // reuse a stale build/ from an earlier install (and litter the repository).
            let copy = venv.with_file_name("shim-src");
            let _ = fs::remove_dir_all(&copy);
            copy_tree(&shim, &copy);
            run_ok(
                Command::new(&py)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .args(["--no-deps", "--force-reinstall"])
                    .arg(&copy),
                "install the shim from shim/python",
            );
            fs::write(&stamp, &pins).unwrap();
        }
        py
    })
}

/// Copies the source files of a directory tree (no build artefacts, no caches).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let skip = name == "build"
            || name == "__pycache__"
            || name.to_string_lossy().ends_with(".egg-info");
        if skip {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot {what}: {e}"));
    assert!(
        out.status.success(),
        "cannot {what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `tests/py/harness.py` with `args` and returns its stdout.
pub fn harness(args: &[&str]) -> String {
    let out = run_ok(
        Command::new(python())
            .arg(repo().join("tests/py/harness.py"))
            .args(args),
        &format!("run harness.py {}", args.join(" ")),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What one `render` run printed.
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Runs `render --dir DIR --format FORMAT`.
pub fn render(dir: &Path, format: &str) -> Rendered {
    let out = Command::new(BIN)
        .args(["render", "--format", format, "--dir"])
        .arg(dir)
        .env_remove("PROMETHEUS_MULTIPROC_DIR")
        .env_remove("prometheus_multiproc_dir")
        .output()
        .expect("run the binary");
    Rendered {
        stdout: String::from_utf8(out.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// One differential comparison result.
pub struct Report {
    pub dir: String,
    pub samples: u64,
    pub diffs: Vec<String>,
}

/// Renders each directory in both formats and compares with the reference.
pub fn differential(dirs: &[PathBuf], scratch: &Path) -> Vec<Report> {
    let mut jobs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let text = render(dir, "text");
        let om = render(dir, "openmetrics");
        assert_eq!(text.code, 0, "render {}: {}", dir.display(), text.stderr);
        assert_eq!(om.code, 0, "render {}: {}", dir.display(), om.stderr);
        let tp = scratch.join(format!("out-{i}.txt"));
        let op = scratch.join(format!("out-{i}.om"));
        fs::write(&tp, &text.stdout).unwrap();
        fs::write(&op, &om.stdout).unwrap();
        jobs.push(serde_json::json!([dir, tp, op]));
    }
    let job_file = scratch.join("jobs.json");
    fs::write(&job_file, serde_json::to_string(&jobs).unwrap()).unwrap();
    let out = harness(&["check", job_file.to_str().unwrap()]);
    let results: Vec<Value> = serde_json::from_str(&out).expect("harness JSON");
    results
        .into_iter()
        .map(|r| Report {
            dir: r["dir"].as_str().unwrap().to_owned(),
            samples: r["samples"].as_u64().unwrap(),
            diffs: r["diffs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect(),
        })
        .collect()
}

/// Asserts that no report has a difference, naming each one that does.
pub fn assert_no_diffs(reports: &[Report]) {
    let bad: Vec<String> = reports
        .iter()
        .filter(|r| !r.diffs.is_empty())
        .map(|r| format!("{}:\n  {}", r.dir, r.diffs.join("\n  ")))
        .collect();
    assert!(
        bad.is_empty(),
        "differences from MultiProcessCollector:\n{}",
        bad.join("\n")
    );
}

/// Parses text-format sample lines into `(name{labels}, value)` pairs.
pub fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (head, value) = l.rsplit_once(' ').unwrap();
            let v = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().unwrap(),
            };
            (head.to_owned(), v)
        })
        .collect()
}

/// The value of the sample line whose `name{labels}` part is exactly `head`.
pub fn value(text: &str, head: &str) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(h, _)| h == head)
        .map(|(_, v)| v)
}

/// `env VAR=VALUE ... BIN`: [`Server::start_with`] with variables set for the server
/// (the wrapper gets the cleaned environment, the server these on top).
pub fn env_prefix(env: &[(&str, &str)]) -> Vec<String> {
    let mut prefix = vec!["env".to_owned()];
    prefix.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    prefix.push(BIN.to_owned());
    prefix
}

/// `RssAnon` of process `pid`, in kB (anonymous memory: the sidecar's own, not the
/// writers' shared pages it maps).
pub fn rss_anon_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A running `multiproc-exporter serve` on a loopback port chosen at run time.
pub struct Server {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts the binary with `args` (plus a port-0 listen address) and waits until it
    /// listens.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(&[BIN], args)
    }

    /// Starts the binary through a wrapper (`prefix` ends with the binary), e.g.
    /// `unshare --pid --fork --mount-proc --kill-child BIN`.
    pub fn start_with(prefix: &[&str], args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(prefix[0])
            .args(&prefix[1..])
            .args(args)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env_remove("PROMETHEUS_MULTIPROC_DIR")
            .env_remove("prometheus_multiproc_dir")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the server");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("address=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("server did not start: {:?}", log.lock().unwrap()));
        Server {
            child,
            addr: addr.parse().unwrap(),
            log,
        }
    }

    /// The sidecar on `dir` with /proc liveness and a lifecycle round every 200 ms: dead
    /// writers' files are compacted soon after they die.
    pub fn compacting(dir: &Path) -> Server {
        let dir = dir.to_str().unwrap();
        Server::start(&[
            "--dir",
            dir,
            "--liveness",
            "proc",
            "--lifecycle.interval",
            "200ms",
        ])
    }

    /// `http://ADDR`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET with headers; returns status, headers (lowercase names) and the raw body.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Http {
        request("GET", &self.url(path), headers)
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self) {
        for _ in 0..200 {
            if self.get("/readyz", &[]).status == 200 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("not ready: {:?}", self.log.lock().unwrap());
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// The log lines so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Whether the log has (or gets within 10 s) a line containing `needle`: a reader
    /// thread collects the log, so a line written during the last response may arrive
    /// just after it.
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.log_text().contains(needle) {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, as received (no decompression).
pub struct Http {
    pub status: u16,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Http {
    /// The body as text, gunzipped if it was compressed.
    pub fn text(&self) -> String {
        if self.headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            use std::io::Read;
            let mut out = String::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_string(&mut out)
                .expect("valid gzip");
            out
        } else {
            String::from_utf8(self.body.clone()).expect("UTF-8 body")
        }
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One HTTP request with ureq (no automatic decompression, no status errors).
pub fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Http {
    try_request(method, url, headers).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// [`request`], returning transport errors (connection refused while a server starts).
pub fn try_request(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Http, ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = agent.run(req.body(()).unwrap())?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap_or_default();
    Ok(Http {
        status,
        headers,
        body,
    })
}

/// Sample lines of an exposition that are not the sidecar's own metrics.
pub fn app_lines(text: &str) -> Vec<String> {
    let own = |l: &str| {
        let name = l
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ");
        name.starts_with("multiproc_exporter_") || name.starts_with("process_")
    };
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !own(l) && *l != "# EOF")
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// A loopback port that was free a moment ago (for servers that cannot report theirs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed and reaped when dropped.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The virtualenv's Gunicorn, writing into `dir` (`PROMETHEUS_MULTIPROC_DIR`), with the
/// virtualenv first on `PATH`.
pub fn gunicorn(dir: &Path) -> Command {
    let bin = python().parent().unwrap();
    let mut c = Command::new(bin.join("gunicorn"));
    c.env("PROMETHEUS_MULTIPROC_DIR", dir).env(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    c
}

/// The `*.db` names a prometheus_client reader would merge, sorted.
pub fn db_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".db") && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// A temporary directory with an empty multiprocess directory `mp` inside it (siblings
/// hold references, copies and outputs).
pub fn temp_mp() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mp");
    fs::create_dir(&dir).unwrap();
    (tmp, dir)
}

/// A counter file of `series` series whose lines are about 400 bytes each (a long label
/// value): a text body of `series * 400` bytes, more than a socket's buffers hold.
pub fn wide_directory(dir: &Path, series: usize) {
    let pad = "p".repeat(360);
    let mut w = multiproc_exporter::write::DbWriter::open(&dir.join("counter_4343.db")).unwrap();
    for i in 0..series {
        let id = format!("{i:06}");
        w.set_sample(
            "wide",
            "wide_total",
            &[("i", &id), ("pad", &pad)],
            "h",
            1.0,
            0.0,
        )
        .unwrap();
    }
}

/// A client with a small receive buffer (no autotuning) that sends `GET path` and reads
/// nothing until the test says so.
pub fn stalled_get(addr: std::net::SocketAddr, path: &str) -> std::net::TcpStream {
    use std::io::Write;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_recv_buffer_size(4096)?;
            socket.connect(addr).await?.into_std()
        })
        .expect("connect a stalled client");
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(&stream, "GET {path} HTTP/1.1\r\nHost: sidecar\r\n\r\n").unwrap();
    stream
}

/// Reads until the end of the stream or an error (a reset); returns the bytes read.
pub fn drain(mut stream: &std::net::TcpStream) -> usize {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}
