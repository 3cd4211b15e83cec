//! Certificates for the web tests, made once per test process with the `openssl` CLI
//! (as the integration tests make theirs): a CA, a server certificate for
//! `IP:127.0.0.1` and `DNS:localhost`, a client certificate from the same CA, a second
//! CA with a client of its own, and a self-signed client.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The generated files, in a directory kept for the whole test run.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

/// SANs of `client.crt`, one of each kind exporter-toolkit compares.
pub(crate) const CLIENT_SANS: &str =
    "DNS:client.example,email:ops@example.com,URI:spiffe://example/client,IP:10.0.0.7";

const SERVER_SANS: &str = "IP:127.0.0.1,DNS:localhost";

pub(crate) fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(Pki::make)
}

/// Runs `openssl` in `dir` with `args`, split at whitespace (no argument has any).
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

impl Pki {
    fn make() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ca(d, "ca", "TestCA");
        ca(d, "ca2", "OtherCA");
        leaf(d, "server", "ca", SERVER_SANS, "serverAuth", 30);
        // The same names, another key and a later expiry: what a rotation installs.
        leaf(d, "server-next", "ca", SERVER_SANS, "serverAuth", 60);
        leaf(d, "client", "ca", CLIENT_SANS, "clientAuth", 30);
        leaf(d, "client2", "ca2", "DNS:other.example", "clientAuth", 30);
        openssl(
            d,
            &format!(
                "req -x509 -new {EC} -keyout selfsigned.key -out selfsigned.crt -days 30 \
                 -subj /CN=self -addext subjectAltName=DNS:client.example"
            ),
        );
        // The same server key as SEC1, and an RSA certificate with a PKCS#1 key: the
        // other encodings rustls reads.
        openssl(d, "ec -in server.key -out server-sec1.key");
        openssl(d, "genrsa -traditional -out rsa.key 2048");
        sign(d, "rsa", "ca", SERVER_SANS, "serverAuth", 30);
        Pki { dir }
    }

    /// The path of a generated file (`server.crt`, `client.key`, ...).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The text of a generated file.
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Copies generated files into `dir`.
    pub(crate) fn copy_to(&self, dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::copy(self.path(n), dir.join(n)).unwrap();
        }
    }
}

fn ca(d: &Path, name: &str, cn: &str) {
    openssl(
        d,
        &format!(
            "req -x509 -new {EC} -keyout {name}.key -out {name}.crt -days 30 -subj /CN={cn} \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
}

/// A new EC key `name.key` and its certificate `name.crt` from `ca`.
fn leaf(d: &Path, name: &str, ca: &str, sans: &str, eku: &str, days: u32) {
    openssl(
        d,
        &format!("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out {name}.key"),
    );
    sign(d, name, ca, sans, eku, days);
}

/// The certificate `name.crt` of the existing key `name.key`, from `ca`.
fn sign(d: &Path, name: &str, ca: &str, sans: &str, eku: &str, days: u32) {
    let ext = format!(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage={eku}\nsubjectAltName={sans}\n"
    );
    std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        d,
        &format!("req -new -key {name}.key -out {name}.csr -subj /CN={name}"),
    );
    openssl(
        d,
        &format!(
            "x509 -req -in {name}.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial \
             -days {days} -out {name}.crt -extfile {name}.ext"
        ),
    );
}
