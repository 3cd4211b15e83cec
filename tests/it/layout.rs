//! The module graph that `src/lib.rs` documents: no import cycle among the top-level
//! modules, and the stages that must stay leaves stay leaves (issue 8).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The non-test source of a module: its file, or every file of its directory except
/// `tests.rs`, each cut at its first `#[cfg(test)]`.
fn source(module: &str) -> String {
    let dir = Path::new(SRC).join(module);
    let mut files = Vec::new();
    if dir.is_dir() {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs")
                    && p.file_name().is_some_and(|n| n != "tests.rs")
                {
                    files.push(p);
                }
            }
        }
    } else {
        files.push(Path::new(SRC).join(format!("{module}.rs")));
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.split("#[cfg(test)]").next().unwrap_or("").to_owned()
        })
        .collect()
}

/// The first segments of every `crate::` path in `text`, grouped imports
/// (`use crate::{a, b::c}`) included.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let first = item.trim().split("::").next().unwrap_or("");
                out.insert(first.trim().to_owned());
            }
        } else {
            let first: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(first);
        }
    }
    out
}

/// Top-level module → the other top-level modules its non-test code names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let lib = std::fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap();
    let modules: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect();
    modules
        .iter()
        .map(|m| {
            let named = crate_paths(&source(m));
            let deps = modules
                .iter()
                .filter(|d| *d != m && named.contains(d.as_str()))
                .cloned()
                .collect();
            (m.clone(), deps)
        })
        .collect()
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        m: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

#[test]
fn test_issue_8_module_graph_has_no_cycle() {
    let g = graph();
    assert!(g.len() >= 15, "{g:?}");
    assert_eq!(find_cycle(&g), None, "{g:#?}");
    let deps = |m: &str| g[m].iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        deps("render"),
        ["model", "parallel"],
        "render depends on model (and its two threads) only"
    );
    assert!(deps("parallel").is_empty(), "parallel depends on nothing");
    assert!(deps("model").is_empty(), "model depends on nothing");
    assert!(
        deps("format").is_empty(),
        "the file format depends on nothing"
    );
    assert_eq!(deps("fold"), ["model"]);
    assert!(deps("procfs").is_empty());
    assert!(
        deps("dir").is_empty(),
        "the held directory depends on nothing"
    );
    assert!(
        deps("healthcheck").is_empty(),
        "the healthcheck client depends on nothing"
    );
    assert!(
        deps("web").is_empty(),
        "the web configuration depends on nothing (issue 12)"
    );
    // The file format has one home: no other module spells the header or padding.
    for (m, _) in g.iter().filter(|(m, _)| m.as_str() != "format") {
        let text = source(m);
        assert!(
            !text.contains("8 - (n + 4) % 8") && !text.contains("HEADER_LEN: usize ="),
            "{m} spells the file layout itself"
        );
    }
}

/// Number spelling has one home (issue 11): no source file but `render/float.rs` calls
/// a digit generator or formats a float with `{:e}`, so every value is spelled alike
/// (test code, cut at `#[cfg(test)]` or in a `tests.rs`, may).
#[test]
fn test_issue_11_number_spelling_has_one_home() {
    let mut stack = vec![Path::new(SRC).to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let text = text.split("#[cfg(test)]").next().unwrap_or("");
            if p.ends_with("render/float.rs") || p.ends_with("tests.rs") {
                continue;
            }
            for needle in ["zmij::", "ryu::", "{:e}"] {
                assert!(
                    !text.contains(needle),
                    "{} spells numbers itself ({needle})",
                    p.display()
                );
            }
        }
    }
}

/// Issue 12: rustls has exactly one crypto provider compiled in (ring): with two, rustls
/// cannot pick a process default and panics at run time. Cargo.lock is the build's whole
/// dependency graph, fuzz/Cargo.lock the fuzz crate's.
#[test]
fn test_issue_12_one_crypto_provider() {
    for lock in ["Cargo.lock", "fuzz/Cargo.lock"] {
        let text = std::fs::read_to_string(format!("{}/{lock}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("read {lock}: {e}"));
        let has = |name: &str| text.contains(&format!("name = \"{name}\"\n"));
        assert!(has("ring"), "{lock}: ring is the provider");
        for other in [
            "aws-lc-rs",
            "aws-lc-sys",
            "rustls-openssl",
            "rustls-graviola",
        ] {
            assert!(!has(other), "{lock}: a second crypto provider, {other}");
        }
    }
}
