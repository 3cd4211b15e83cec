use super::*;
use crate::web::tests::pki::pki;
use std::os::unix::fs::symlink;

const CONFIG: &str = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n";

/// Writes `name` in `dir` by a rename over it, as tools that rotate files do.
fn replace(dir: &Path, name: &str, content: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn install(dir: &Path, cert: &str) {
    replace(
        dir,
        "tls.crt",
        pki().read(&format!("{cert}.crt")).as_bytes(),
    );
    replace(
        dir,
        "tls.key",
        pki().read(&format!("{cert}.key")).as_bytes(),
    );
}

/// A reloader of `dir/web.yml`, written as `yaml` first, that looks at its files at
/// every call.
fn watching(dir: &Path, yaml: &str) -> Reloader {
    replace(dir, "web.yml", yaml.as_bytes());
    Reloader::new(&dir.join("web.yml"))
        .unwrap()
        .with_check_interval(Duration::ZERO)
}

/// Days the serving certificate has left, rounded (the test PKI's are 30 and 60).
fn days_left(r: &Reloader) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (r.current().cert_not_after().unwrap() - now + 43_200) / 86_400
}

#[test]
fn replaced_files_are_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "server");
    let r = watching(dir.path(), CONFIG);
    assert_eq!(days_left(&r), 30);
    assert!(!r.check_now(), "nothing changed");
    install(dir.path(), "server-next");
    assert_eq!(days_left(&r), 60, "current() saw the new certificate");
    let status = r.status();
    assert!(status.last_reload_ok);
    assert_eq!((status.reloads, status.reload_failures), (1, 0));
    assert_eq!(status.cert_not_after, r.loaded().cert_not_after());
    // The config itself: users appear.
    let hash = bcrypt::hash("pw", 4).unwrap();
    replace(
        dir.path(),
        "web.yml",
        format!("{CONFIG}basic_auth_users:\n  alice: {hash}\n").as_bytes(),
    );
    assert!(r.current().auth.is_some());
}

/// Kubernetes' Secret volume: every name is a symlink into `..data`, itself a symlink
/// to a timestamped directory, swapped with one rename.
#[test]
fn a_data_symlink_swap_is_followed() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    let version = |name: &str, cert: &str| {
        let v = d.join(name);
        std::fs::create_dir(&v).unwrap();
        install(&v, cert);
        std::fs::write(v.join("web.yml"), CONFIG).unwrap();
    };
    version("..2024_01_01_a", "server");
    symlink("..2024_01_01_a", d.join("..data")).unwrap();
    for name in ["web.yml", "tls.crt", "tls.key"] {
        symlink(format!("..data/{name}"), d.join(name)).unwrap();
    }
    let r = Reloader::new(&d.join("web.yml"))
        .unwrap()
        .with_check_interval(Duration::ZERO);
    assert_eq!(days_left(&r), 30);
    version("..2024_01_02_b", "server-next");
    symlink("..2024_01_02_b", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    std::fs::remove_dir_all(d.join("..2024_01_01_a")).unwrap();
    assert!(r.check_now());
    assert_eq!(days_left(&r), 60);
}

#[test]
fn an_invalid_file_keeps_the_last_good_configuration() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "server");
    let r = watching(dir.path(), CONFIG);
    let good = r.current();
    replace(
        dir.path(),
        "web.yml",
        b"tls_server_config:\n  cert_filse: tls.crt\n",
    );
    assert!(!r.check_now());
    assert!(Arc::ptr_eq(&good, &r.current()), "the last good one stays");
    let status = r.status();
    assert!(!status.last_reload_ok);
    assert_eq!(status.reload_failures, 1);
    assert!(status.last_error.unwrap().contains("cert_filse"));
    assert_eq!(status.cert_not_after, good.cert_not_after());
    // Tried again at each check, counted once per change.
    assert!(!r.check_now());
    assert_eq!(r.status().reload_failures, 1);
    // A key that no longer matches its certificate: refused too.
    replace(dir.path(), "web.yml", CONFIG.as_bytes());
    replace(
        dir.path(),
        "tls.key",
        pki().read("server-next.key").as_bytes(),
    );
    assert!(!r.check_now());
    let status = r.status();
    assert_eq!(status.reload_failures, 2);
    assert!(status.last_error.unwrap().contains("does not belong"));
    // Fixed: loads, and says so.
    install(dir.path(), "server-next");
    assert!(r.check_now());
    let status = r.status();
    assert!(status.last_reload_ok && status.last_error.is_none());
    assert_eq!(days_left(&r), 60);
}

/// A named file that is missing, then appears, is picked up although no watched file
/// changed in between.
#[test]
fn a_file_that_appears_later_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "server");
    let r = watching(dir.path(), CONFIG);
    replace(
        dir.path(),
        "web.yml",
        b"tls_server_config:\n  cert_file: new.crt\n  key_file: new.key\n",
    );
    assert!(!r.check_now());
    assert_eq!(r.status().reload_failures, 1);
    std::fs::write(dir.path().join("new.crt"), pki().read("server-next.crt")).unwrap();
    std::fs::write(dir.path().join("new.key"), pki().read("server-next.key")).unwrap();
    assert!(r.check_now());
    assert_eq!(days_left(&r), 60);
    assert_eq!(r.current().files.len(), 3);
    // And the new files are the ones watched now.
    replace(dir.path(), "new.crt", pki().read("server.crt").as_bytes());
    replace(dir.path(), "new.key", pki().read("server.key").as_bytes());
    assert!(r.check_now());
    assert_eq!(days_left(&r), 30);
}

/// `current()` looks at the files at most once per check interval; `check_now` always.
#[test]
fn checks_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "server");
    replace(dir.path(), "web.yml", CONFIG.as_bytes());
    let r = Reloader::new(&dir.path().join("web.yml"))
        .unwrap()
        .with_check_interval(Duration::from_secs(3600));
    install(dir.path(), "server-next");
    assert_eq!(days_left(&r), 30, "not looked at within the interval");
    assert_eq!(r.status().reloads, 0);
    assert!(r.check_now());
    assert_eq!(days_left(&r), 60);
    assert_eq!(CHECK_INTERVAL, Duration::from_secs(1));
}

#[test]
fn plain_http_has_no_expiry_and_a_bad_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    replace(dir.path(), "web.yml", b"basic_auth_users:\n");
    let r = Reloader::new(&dir.path().join("web.yml")).unwrap();
    assert_eq!(r.status().cert_not_after, None);
    replace(dir.path(), "web.yml", b"basic_auth_users:\n  alice: nope\n");
    let err = Reloader::new(&dir.path().join("web.yml")).unwrap_err();
    assert_eq!(err.key, "basic_auth_users.alice");
}

/// The credential cache and the rate limiter's tokens survive a reload that keeps them.
#[test]
fn state_carries_over_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let yaml =
        format!("basic_auth_users:\n  alice: {hash}\nrate_limit:\n  interval: 1h\n  burst: 1\n");
    let r = watching(dir.path(), &yaml);
    let header = b"Basic YWxpY2U6cHc=";
    let first = r.current();
    let crate::web::auth::Check::Verify(v) = first.auth.as_ref().unwrap().check(Some(header))
    else {
        panic!("first sight");
    };
    assert!(v.run());
    assert!(first.rate_limit.as_ref().unwrap().allow());
    replace(
        dir.path(),
        "web.yml",
        format!("# touched\n{yaml}").as_bytes(),
    );
    let second = r.current();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(matches!(
        second.auth.as_ref().unwrap().check(Some(header)),
        crate::web::auth::Check::Allowed
    ));
    assert!(
        !second.rate_limit.as_ref().unwrap().allow(),
        "the spent token stays spent"
    );
}

/// A config emptied or cut short while rewritten in place must not turn TLS or basic
/// auth off: the reload is refused and the last good configuration stays.
#[test]
fn a_reload_that_drops_tls_or_auth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "server");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let full = format!("{CONFIG}basic_auth_users:\n  alice: {hash}\n");
    let r = watching(dir.path(), &full);
    for cut in ["", "tls_server_config:\n", CONFIG] {
        std::fs::write(dir.path().join("web.yml"), cut).unwrap();
        let c = r.current();
        assert!(
            c.tls.is_some() && c.auth.is_some(),
            "{cut:?} kept the last good"
        );
        assert!(!r.status().last_reload_ok, "{cut:?} is a failed reload");
    }
}

/// A FIFO named as a certificate does not block the reload (an async worker).
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "server");
    let r = watching(dir.path(), CONFIG);
    std::fs::remove_file(dir.path().join("tls.crt")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("tls.crt"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert!(r.current().tls.is_some());
    let error = r.status().last_error.unwrap();
    assert!(error.contains("not a regular file"), "{error}");
}
