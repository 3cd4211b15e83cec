//! Stage 5: write merged families in a Prometheus exposition format.
//!
//! The output is what prometheus_client's `generate_latest` writes for the same families
//! (text 0.0.4, text 1.0.0, OpenMetrics 1.0.0), with one deliberate difference: in
//! OpenMetrics, prometheus_client passes sample names through the *label* name check, so
//! `a:b` becomes `a_b` in sample lines while its `# TYPE` line says `a:b`, which no
//! parser can reconcile; we keep metric-name rules for both.
//!
//! Writing goes into one reused `String` with our own escaping ([`escape`]) and number
//! spelling ([`float`]); nothing here allocates per sample.

pub mod escape;
pub mod float;

use crate::merge::{Family, Sample};
use crate::model::MetricType;
use escape::Escaping;
use std::sync::Arc;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/plain; version=0.0.4`: legacy names only (escaped with underscores).
    Text004,
    /// `text/plain; version=1.0.0; escaping=...`.
    Text1(Escaping),
    /// `application/openmetrics-text; version=1.0.0` (also served for 0.0.1).
    OpenMetrics(Escaping),
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> String {
        match self {
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8".to_owned(),
            Format::Text1(e) => format!(
                "text/plain; version=1.0.0; charset=utf-8; escaping={}",
                e.as_param()
            ),
            Format::OpenMetrics(e) => format!(
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping={}",
                e.as_param()
            ),
        }
    }

    fn escaping(self) -> Escaping {
        match self {
            Format::Text004 => Escaping::Underscores,
            Format::Text1(e) | Format::OpenMetrics(e) => e,
        }
    }
}

/// Appends the exposition of `families` to `out`. OpenMetrics output ends with `# EOF`.
pub fn render(families: &[Family], format: Format, out: &mut String) {
    for family in families {
        render_family(family, format, out);
    }
    if matches!(format, Format::OpenMetrics(_)) {
        out.push_str("# EOF\n");
    }
}

/// Appends one family (HELP, TYPE and samples). No `# EOF`.
pub fn render_family(family: &Family, format: Format, out: &mut String) {
    let escaping = format.escaping();
    let om = matches!(format, Format::OpenMetrics(_));
    let counter_text = !om && family.typ == MetricType::Counter;
    let type_name = match (om, family.typ) {
        (false, MetricType::Unknown) => "untyped",
        (_, t) => t.as_str(),
    };
    for line in ["# HELP ", "# TYPE "] {
        out.push_str(line);
        if counter_text {
            let full = format!("{}_total", family.name);
            escape::push_metric_name(out, &full, escaping);
        } else {
            escape::push_metric_name(out, &family.name, escaping);
        }
        out.push(' ');
        if line == "# HELP " {
            if om {
                escape::push_help_openmetrics(out, &family.help);
            } else {
                escape::push_help_text(out, &family.help);
            }
        } else {
            out.push_str(type_name);
        }
        out.push('\n');
    }
    for sample in &family.samples {
        push_sample(out, sample, escaping);
    }
}

/// One sample line: `name{labels} value`, or `{"name",labels} value` for a UTF-8 name
/// under `allow-utf-8`.
fn push_sample(out: &mut String, s: &Sample, escaping: Escaping) {
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
