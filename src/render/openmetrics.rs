//! OpenMetrics 1.0.0 text (also served as 0.0.1).
//!
//! What differs from the text format: HELP and TYPE name the family (`c`, not
//! `c_total`), HELP also escapes `"`, and the exposition ends with `# EOF`.

use super::escape::{self, Escaping};
use super::sample::push_samples;
use crate::model::Family;

/// Appends one family: HELP, TYPE and its samples.
pub fn push_family(out: &mut String, family: &Family, escaping: Escaping) {
    out.push_str("# HELP ");
    escape::push_metric_name(out, &family.name, escaping);
    out.push(' ');
    escape::push_help_openmetrics(out, &family.help);
    out.push_str("\n# TYPE ");
    escape::push_metric_name(out, &family.name, escaping);
    out.push(' ');
    out.push_str(family.typ.as_str());
    out.push('\n');
    push_samples(out, family, escaping);
}

/// The end marker every OpenMetrics exposition needs.
pub fn push_end(out: &mut String) {
    out.push_str("# EOF\n");
}
