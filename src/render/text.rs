//! The Prometheus text format (0.0.4, and 1.0.0 with its escaping schemes).
//!
//! What differs from OpenMetrics: a counter's HELP and TYPE lines name the sample
//! (`c_total`), as prometheus_client writes them; `unknown` is spelled `untyped`; HELP
//! escapes only `\\` and newline; there is no end marker.

use super::escape::{self, Escaping};
use super::sample::push_samples;
use crate::model::{Family, MetricType};

/// Appends one family: HELP, TYPE and its samples.
pub fn push_family(out: &mut String, family: &Family, escaping: Escaping) {
    let counter = family.typ == MetricType::Counter;
    let type_name = match family.typ {
        MetricType::Unknown => "untyped",
        t => t.as_str(),
    };
    let push_name = |out: &mut String| {
        if counter {
            escape::push_metric_name(out, &format!("{}_total", family.name), escaping);
        } else {
            escape::push_metric_name(out, &family.name, escaping);
        }
    };
    out.push_str("# HELP ");
    push_name(out);
    out.push(' ');
    escape::push_help_text(out, &family.help);
    out.push_str("\n# TYPE ");
    push_name(out);
    out.push(' ');
    out.push_str(type_name);
    out.push('\n');
    push_samples(out, family, escaping);
}
