//! Sample lines, the same in every format: `name{labels} value`, or
//! `{"name",labels} value` for a UTF-8 name under `allow-utf-8`.

use super::escape::{self, Escaping};
use super::float;
use crate::model::Sample;
use std::sync::Arc;

/// One sample line: `name{labels} value`, or `{"name",labels} value` for a UTF-8 name
/// under `allow-utf-8`.
#[inline]
pub(super) fn push_sample(out: &mut String, s: &Sample, escaping: Escaping) {
    match &s.prefix {
        Some(prefix) if escaping == Escaping::Underscores => out.push_str(prefix),
        _ => push_prefix(out, s, escaping),
    }
    out.push(' ');
    float::push_go(out, s.value);
    out.push('\n');
}

/// `name{labels}` of a sample under `underscores` escaping, for [`Sample::prefix`].
pub fn underscores_prefix(s: &Sample) -> Arc<str> {
    let mut out = String::new();
    push_prefix(&mut out, s, Escaping::Underscores);
    Arc::from(out)
}

/// Everything of a sample line before the value.
fn push_prefix(out: &mut String, s: &Sample, escaping: Escaping) {
    let quoted_name = escaping == Escaping::AllowUtf8 && !escape::is_legacy_metric_name(&s.name);
    let has_labels = !s.labels.is_empty() || s.pid.is_some() || s.le.is_some();
    if quoted_name {
        out.push_str("{\"");
        escape::push_quoted_content(out, &s.name);
        out.push('"');
        if has_labels {
            out.push(',');
        }
    } else {
        escape::push_metric_name(out, &s.name, escaping);
        if has_labels {
            out.push('{');
        }
    }
    if has_labels {
        push_labels(out, s, escaping);
    }
    if has_labels || quoted_name {
        out.push('}');
    }
}

/// Labels in name order, with the sample's `le` and `pid` placed where they sort; the
/// file's `pid` replaces a `pid` label of the key, as in prometheus_client.
fn push_labels(out: &mut String, s: &Sample, escaping: Escaping) {
    let mut le_buf = String::new();
    let le = s.le.map(|b| {
        float::push_go(&mut le_buf, b);
        ("le", le_buf.as_str())
    });
    let pid = s.pid.as_deref().map(|p| ("pid", p));
    let mut extras = [le, pid].into_iter().flatten().peekable();
    let mut first = true;
    let mut emit = |out: &mut String, name: &str, value: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        escape::push_label_name(out, name, escaping);
        out.push_str("=\"");
        escape::push_quoted_content(out, value);
        out.push('"');
    };
    for (name, value) in s.labels.iter() {
        let name: &str = name;
        if (s.pid.is_some() && name == "pid") || (s.le.is_some() && name == "le") {
            continue;
        }
        while let Some(&(extra, v)) = extras.peek() {
            if extra < name {
                emit(out, extra, v);
                extras.next();
            } else {
                break;
            }
        }
        emit(out, name, value);
    }
    for (extra, v) in extras {
        emit(out, extra, v);
    }
}
