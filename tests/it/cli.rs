//! Flags, environment fallbacks and exit codes of `render`, `compact` and `healthcheck`.

use crate::util::{BIN, harness, value};
use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (String, String, i32) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("PROMETHEUS_MULTIPROC_DIR")
        .env_remove("prometheus_multiproc_dir");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn counter_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    harness(&["case", tmp.path().to_str().unwrap(), "test_counter_adds"]);
    tmp
}

#[test]
fn dir_from_the_environment() {
    let tmp = counter_dir();
    let dir = tmp.path().to_str().unwrap();
    let (out, err, code) = run(&["render"], &[("PROMETHEUS_MULTIPROC_DIR", dir)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(value(&out, "c_total"), Some(3.0));
}

#[test]
fn test_deprecation_warning() {
    // Only the legacy lowercase variable: still honoured, as prometheus_client does.
    let tmp = counter_dir();
    let dir = tmp.path().to_str().unwrap();
    let (out, err, code) = run(&["render"], &[("prometheus_multiproc_dir", dir)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(value(&out, "c_total"), Some(3.0));
}

#[test]
fn flag_wins_over_environment() {
    let tmp = counter_dir();
    let empty = tempfile::tempdir().unwrap();
    let (out, _, code) = run(
        &["render", "--dir", tmp.path().to_str().unwrap()],
        &[("PROMETHEUS_MULTIPROC_DIR", empty.path().to_str().unwrap())],
    );
    assert_eq!(code, 0);
    assert_eq!(value(&out, "c_total"), Some(3.0));
}

#[test]
fn test_unset_syncdir_env() {
    let (out, err, code) = run(&["render"], &[]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("--dir") && err.contains("PROMETHEUS_MULTIPROC_DIR"),
        "{err}"
    );
}

#[test]
fn test_file_syncpath() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("plain-file");
    std::fs::write(&f, b"x").unwrap();
    let (out, err, code) = run(&["render", "--dir", f.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("is not a directory") && err.contains("plain-file"),
        "{err}"
    );
}

#[test]
fn missing_directory_exits_1_naming_it() {
    let (_, err, code) = run(&["render", "--dir", "/nonexistent/mp-dir"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/mp-dir") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn empty_directory_renders_nothing_and_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let (out, _, code) = run(&["render", "--dir", d], &[]);
    assert_eq!((out.as_str(), code), ("", 0));
    let (out, _, code) = run(&["render", "--dir", d, "--format", "openmetrics"], &[]);
    assert_eq!((out.as_str(), code), ("# EOF\n", 0));
}

#[test]
fn usage_errors_exit_2_with_one_message() {
    for args in [
        &["render", "--format", "xml"][..],
        &["render", "--no-such-flag"],
        &["frobnicate"],
    ] {
        let (out, err, code) = run(args, &[]);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty());
        assert!(err.starts_with("error:"), "{err}");
    }
}

#[test]
fn help_documents_flags_and_environment() {
    let (out, _, code) = run(&["render", "--help"], &[]);
    assert_eq!(code, 0);
    for needle in [
        "--dir",
        "PROMETHEUS_MULTIPROC_DIR",
        "--format",
        "openmetrics",
        "--log.level",
    ] {
        assert!(out.contains(needle), "{needle} in\n{out}");
    }
}

/// Every environment variable the binary reads: the fallback of every flag of every
/// subcommand, and the legacy lowercase directory variable.
pub fn every_env_var() -> Vec<String> {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if let Some(var) = arg.get_env() {
                out.push(var.to_string_lossy().into_owned());
            }
        }
        cmd.get_subcommands().for_each(|sub| walk(sub, out));
    }
    let mut out = vec![multiproc_exporter::config::LEGACY_DIR_ENV.to_owned()];
    walk(&multiproc_exporter::config::Cli::command(), &mut out);
    out.sort();
    out.dedup();
    assert!(
        out.len() >= 13 && out.iter().any(|v| v == "MULTIPROC_EXPORTER_LOG_LEVEL"),
        "{out:?}"
    );
    out
}

#[test]
fn test_issue_8_empty_environment_counts_as_unset() {
    let tmp = counter_dir();
    let dir = tmp.path().to_str().unwrap();
    let vars = every_env_var();
    let env: Vec<(&str, &str)> = vars.iter().map(|v| (v.as_str(), "")).collect();
    let (out, err, code) = run(&["render", "--dir", dir], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(value(&out, "c_total"), Some(3.0));
    let (out, err, code) = run(&["compact", "--dir", dir], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("evidence="), "{out}");
}

#[test]
fn test_issue_8_empty_dir_variable_falls_back_to_the_legacy_one() {
    let tmp = counter_dir();
    let dir = tmp.path().to_str().unwrap();
    let (out, err, code) = run(
        &["render"],
        &[
            ("PROMETHEUS_MULTIPROC_DIR", ""),
            ("prometheus_multiproc_dir", dir),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(value(&out, "c_total"), Some(3.0));
}

#[test]
fn test_issue_8_only_serve_suggests_demo() {
    for cmd in ["render", "compact"] {
        let (out, err, code) = run(&[cmd], &[]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(out.is_empty());
        assert!(
            err.contains("--dir") && err.contains("PROMETHEUS_MULTIPROC_DIR"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("--demo"), "{cmd} suggests --demo: {err}");
    }
    // `serve` does have --demo; its message offers it. An unused port keeps the test
    // from serving should the message ever stop being an error.
    let (_, err, code) = run(&["serve", "--web.listen-address", "127.0.0.1:0"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--demo"), "{err}");
}

#[test]
fn test_issue_8_compact_says_which_directory_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("absent");
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let (missing, file) = (missing.to_str().unwrap(), file.to_str().unwrap());
    for cmd in ["compact", "render"] {
        let (out, err, code) = run(&[cmd, "--dir", missing], &[]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(out.is_empty());
        assert!(
            err.contains(&format!("directory {missing} does not exist"))
                && !err.contains("not a directory"),
            "{cmd}: {err}"
        );
        let (out, err, code) = run(&[cmd, "--dir", file], &[]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(out.is_empty());
        assert!(
            err.contains(&format!("{file} is not a directory")) && !err.contains("does not exist"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn test_issue_8_help_shows_no_internal_placeholders() {
    let mut all = String::new();
    let commands = [
        &[][..],
        &["serve"],
        &["render"],
        &["compact"],
        &["healthcheck"],
        &["demo-worker"],
    ];
    for (cmd, help) in commands.iter().flat_map(|c| [(c, "--help"), (c, "-h")]) {
        let mut args = cmd.to_vec();
        args.push(help);
        let (out, err, code) = run(&args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        for placeholder in out.split('<').skip(1).filter_map(|s| s.split_once('>')) {
            let name = placeholder.0;
            assert!(
                !name.is_empty()
                    && !name.contains('_')
                    && !name.chars().any(|c| c.is_ascii_lowercase()),
                "`{}` shows the placeholder <{name}>",
                args.join(" ")
            );
        }
        all.push_str(&out);
    }
    for shown in [
        "--liveness <MODE>",
        "--compaction <ON|OFF>",
        "--log.level <LEVEL>",
        "--log.format <FORMAT>",
        "--format <FORMAT>",
    ] {
        assert!(all.contains(shown), "{shown} in\n{all}");
    }
}

#[test]
fn test_issue_10_healthcheck_exits_0_only_while_the_server_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("not-yet");
    let server = crate::util::Server::start(&["--dir", missing.to_str().unwrap()]);
    let addr = server.addr.to_string();
    // The port from --web.listen-address, or from the variable `serve` reads too.
    let (out, err, code) = run(&["healthcheck", "--web.listen-address", &addr], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("healthy: GET http://"), "{out}");
    let (_, err, code) = run(
        &["healthcheck"],
        &[("MULTIPROC_EXPORTER_WEB_LISTEN_ADDRESS", &addr)],
    );
    assert_eq!(code, 0, "{err}");
    // /healthz never depends on the directory; /readyz does, through --url.
    let readyz = format!("http://{addr}/readyz");
    let (out, err, code) = run(&["healthcheck", "--url", &readyz], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("503"), "{err}");
    std::fs::create_dir(&missing).unwrap();
    server.wait_ready();
    let (_, err, code) = run(&["healthcheck", "--url", &readyz], &[]);
    assert_eq!(code, 0, "{err}");
    // Once the server is gone: 1, and a message naming the URL.
    drop(server);
    let (out, err, code) = run(&["healthcheck", "--web.listen-address", &addr], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.is_empty());
    assert!(
        err.contains(&format!("http://{addr}/healthz")) && err.contains("cannot connect"),
        "{err}"
    );
}

#[test]
fn test_issue_10_healthcheck_usage_errors_exit_2() {
    for args in [
        &["healthcheck", "--url", "https://127.0.0.1:9867/healthz"][..],
        &["healthcheck", "--web.listen-address", "nonsense"],
        &["healthcheck", "--timeout", "soon"],
    ] {
        let (out, err, code) = run(args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.starts_with("error:"), "{err}");
    }
}
