use super::{ip_string, subject_alt_names};
use crate::web::tests::pki::pki;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[test]
fn ip_sans_are_spelled_as_go_spells_them() {
    assert_eq!(ip_string(&[127, 0, 0, 1]).as_deref(), Some("127.0.0.1"));
    let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
    assert_eq!(ip_string(&mapped).as_deref(), Some("10.0.0.1"));
    let mut v6 = [0u8; 16];
    v6[15] = 1;
    assert_eq!(ip_string(&v6).as_deref(), Some("::1"));
    let mut doc = [0u8; 16];
    doc[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    doc[15] = 0x10;
    assert_eq!(ip_string(&doc).as_deref(), Some("2001:db8::10"));
    assert_eq!(ip_string(&[1, 2, 3]), None);
}

/// The kinds exporter-toolkit compares, read from a certificate `openssl` made.
#[test]
fn sans_of_every_kind_are_read() {
    let cert = CertificateDer::from_pem_file(pki().path("client.crt")).unwrap();
    let mut sans = subject_alt_names(&cert).unwrap();
    sans.sort();
    assert_eq!(
        sans,
        [
            "10.0.0.7",
            "client.example",
            "ops@example.com",
            "spiffe://example/client"
        ]
    );
    let ca = CertificateDer::from_pem_file(pki().path("ca.crt")).unwrap();
    assert!(subject_alt_names(&ca).unwrap().is_empty());
    assert!(subject_alt_names(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_err());
}
