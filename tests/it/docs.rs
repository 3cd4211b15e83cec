//! docs/configuration.md documents every flag and environment variable that `--help`
//! shows, so the two cannot drift apart.

use crate::util::BIN;

fn tokens(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in help
        .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | ',' | '=' | '<' | '>' | ':'))
    {
        let w = word.trim_matches(|c: char| c == '.' || c == ')' || c == '(');
        let is_flag = w.starts_with("--") && w.len() > 2 && !matches!(w, "--help" | "--version");
        let is_env =
            w.len() > 4 && w.chars().all(|c| c.is_ascii_uppercase() || c == '_') && w.contains('_');
        if is_flag || is_env {
            out.push(w.to_owned());
        }
    }
    out
}

#[test]
fn configuration_doc_covers_help() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    for cmd in ["serve", "render"] {
        let out = std::process::Command::new(BIN)
            .args([cmd, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let found = tokens(&help);
        assert!(found.len() >= 4, "{found:?}");
        for t in found {
            assert!(
                doc.contains(&t),
                "`{cmd} --help` shows {t}, docs/configuration.md does not"
            );
        }
    }
}
