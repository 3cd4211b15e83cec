//! The Python shim: its pytest suite, and `pip install ./shim/python` in a fresh
//! virtualenv.

use crate::util::python;
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn shim_pytest_suite_passes() {
    let out = Command::new(python())
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "shim/python/tests",
        ])
        .current_dir(REPO)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("7 passed"), "{text}");
}

#[test]
fn shim_installs_with_pip_in_a_fresh_virtualenv() {
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    let base = std::env::var("MPE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    assert!(
        Command::new(base)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
    );
    // What a user does from a clone, `pip install ./shim/python`, on a copy: setuptools
    // writes build/ next to the sources and must not leave it in the repository.
    let src = tmp.path().join("src");
    let copied = Command::new("cp")
        .args(["-r", &format!("{REPO}/shim/python"), src.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copied.success());
    let _ = std::fs::remove_dir_all(src.join("build"));
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "./src"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    let import = Command::new(venv.join("bin/python"))
        .args(["-c", "import multiproc_exporter, multiproc_exporter.gunicorn, multiproc_exporter.uwsgi, prometheus_client; print('ok')"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&import.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
}
