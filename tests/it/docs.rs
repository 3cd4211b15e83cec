//! docs/configuration.md documents every flag and environment variable that `--help`
//! shows, so the two cannot drift apart; the self-metrics table matches a scrape; and
//! every relative link of the Markdown files resolves.

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
    for cmd in ["serve", "render", "compact", "healthcheck"] {
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

/// The self-metrics rows of docs/operations.md: `name{labels}` and type; of the rows
/// that exist only with a web configuration if `web_rows`, of the others if not.
pub(crate) fn documented_self_metrics(
    web_rows: bool,
) -> std::collections::BTreeMap<String, String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let section = doc
        .split("## Self-metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Self-metrics section");
    section
        .lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let typ = cells.next()?;
            let meaning = cells.next().unwrap_or("");
            let web = meaning.starts_with("with `--web.config.file`")
                || meaning.starts_with("when serving TLS");
            (name.starts_with("multiproc_exporter_") && web == web_rows)
                .then(|| (name.to_owned(), typ.to_owned()))
        })
        .collect()
}

/// What a scrape exposes of ours: `name{labels}` (label names in order, `le` left out)
/// and type, from the text format's TYPE lines and sample lines.
pub(crate) fn exposed_self_metrics(body: &str) -> std::collections::BTreeMap<String, String> {
    let mut types = std::collections::BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE multiproc_exporter_") {
            let (name, typ) = rest.split_once(' ').unwrap();
            types.insert(format!("multiproc_exporter_{name}"), typ.to_owned());
        }
    }
    let mut out = std::collections::BTreeMap::new();
    for (name, typ) in types {
        let labels: std::collections::BTreeSet<String> = body
            .lines()
            .filter(|l| {
                let Some(r) = l.strip_prefix(name.as_str()) else {
                    return false;
                };
                let r = if typ == "histogram" {
                    ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|suffix| r.strip_prefix(suffix))
                        .unwrap_or(r)
                } else {
                    r
                };
                r.starts_with('{') || r.starts_with(' ')
            })
            .filter_map(|l| {
                l.split_once('{')
                    .map(|(_, r)| r.split('}').next().unwrap_or(""))
            })
            .flat_map(|ls| {
                ls.split(',')
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned()))
                    .collect::<Vec<_>>()
            })
            .filter(|k| k != "le")
            .collect();
        let key = if labels.is_empty() {
            name
        } else {
            format!(
                "{name}{{{}}}",
                labels.into_iter().collect::<Vec<_>>().join(",")
            )
        };
        out.insert(key, typ);
    }
    out
}

/// Issue 8: the self-metrics table of docs/operations.md is what a scrape exposes.
#[test]
fn test_issue_8_self_metrics_table_matches_a_scrape() {
    let tmp = tempfile::tempdir().unwrap();
    crate::util::harness(&["case", tmp.path().to_str().unwrap(), "test_counter_adds"]);
    let s = crate::util::Server::start(&["--dir", tmp.path().to_str().unwrap()]);
    s.wait_ready();
    let body = s.get("/metrics", &[]).text();
    let exposed = exposed_self_metrics(&body);
    let documented = documented_self_metrics(false);
    assert!(exposed.len() >= 25, "{exposed:?}");
    assert_eq!(
        exposed, documented,
        "docs/operations.md's self-metrics table differs from a scrape"
    );
    assert!(
        !body.lines().any(|l| l.starts_with("process_")),
        "bare process_* names belong to the application"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

/// The targets of inline links `[text](target)` outside code blocks and code spans.
fn link_targets(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let code_span = rest[..i].matches('`').count() % 2 == 1;
            if !code_span {
                out.push(after[..end].to_owned());
            }
            rest = &after[end..];
        }
    }
    out
}

/// Every relative link in the committed Markdown files reaches a file of the
/// repository, and every `#anchor` into a Markdown file names one of its headings: the
/// README and docs point newcomers at files that exist.
#[test]
fn test_issue_10_every_link_in_the_docs_resolves() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = std::process::Command::new("git")
        .args(["ls-files", "*.md"])
        .current_dir(repo)
        .output()
        .unwrap();
    let files = String::from_utf8(listed.stdout).unwrap();
    assert!(files.lines().count() >= 10, "git ls-files found {files:?}");
    let mut broken = Vec::new();
    for file in files.lines() {
        let path = repo.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file_part, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let dest = if file_part.is_empty() {
                path.clone()
            } else {
                path.parent().unwrap().join(file_part)
            };
            if !dest.exists() {
                broken.push(format!("{file}: {target} (no such file)"));
            } else if !fragment.is_empty() && dest.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&dest).unwrap();
                if !anchors(&text).iter().any(|a| a == fragment) {
                    broken.push(format!("{file}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
