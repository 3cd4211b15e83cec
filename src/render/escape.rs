//! Escaping of names, label values and help text, owned here because every client
//! library we looked at gets some part of it wrong.
//!
//! Label values escape `\`, newline and `"` in every format. HELP escapes `\` and newline
//! in the text format and also `"` in OpenMetrics. Names are kept when they are valid
//! legacy names; otherwise they are rewritten by the negotiated escaping scheme
//! (`underscores` unless the scraper asked for another) or quoted under `allow-utf-8`.
//!
//! The escapes themselves and the legacy label-name rule are spelled once, in
//! [`crate::model::labels`], because label sets are kept spelled (see there).

pub use crate::model::labels::is_legacy_label_name;
use crate::model::labels::{is_label_rune, push_escaped};

/// How names outside the legacy character set are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Escaping {
    /// Replace each invalid character by `_` (the default).
    #[default]
    Underscores,
    /// `_` → `__`, `.` → `_dot_`, other invalid characters → `__`.
    Dots,
    /// `U__` prefix, `_` → `__`, other invalid characters → `_<hex code point>_`.
    Values,
    /// Keep UTF-8 names, quoted when not legacy-valid.
    AllowUtf8,
}

impl Escaping {
    /// Reads the `escaping=` parameter value.
    pub fn from_param(value: &str) -> Option<Escaping> {
        match value {
            "underscores" => Some(Escaping::Underscores),
            "dots" => Some(Escaping::Dots),
            "values" => Some(Escaping::Values),
            "allow-utf-8" => Some(Escaping::AllowUtf8),
            _ => None,
        }
    }

    /// The parameter value, as echoed in `Content-Type`.
    pub fn as_param(self) -> &'static str {
        match self {
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
            Escaping::AllowUtf8 => "allow-utf-8",
        }
    }
}

fn is_metric_rune(c: char, i: usize) -> bool {
    is_label_rune(c, i) || c == ':'
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_legacy_metric_name(s: &str) -> bool {
    !s.is_empty() && s.chars().enumerate().all(|(i, c)| is_metric_rune(c, i))
}

/// Appends a label value (or a quoted name) with `\\`, newline and `"` escaped.
pub fn push_quoted_content(out: &mut String, s: &str) {
    push_escaped(out, s, true);
}

/// Appends text-format HELP: `\\` and newline escaped, `"` kept.
pub fn push_help_text(out: &mut String, s: &str) {
    push_escaped(out, s, false);
}

/// Appends OpenMetrics HELP: `\`, newline and `"` escaped.
pub fn push_help_openmetrics(out: &mut String, s: &str) {
    push_quoted_content(out, s);
}

fn push_rewritten(out: &mut String, s: &str, escaping: Escaping, valid: fn(char, usize) -> bool) {
    match escaping {
        Escaping::Underscores => {
            for (i, c) in s.chars().enumerate() {
                out.push(if valid(c, i) { c } else { '_' });
            }
        }
        Escaping::Dots => {
            for (i, c) in s.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    '.' => out.push_str("_dot_"),
                    c if valid(c, i) => out.push(c),
                    _ => out.push_str("__"),
                }
            }
        }
        Escaping::Values => {
            use std::fmt::Write;
            out.push_str("U__");
            for (i, c) in s.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    c if valid(c, i) => out.push(c),
                    c => {
                        let _ = write!(out, "_{:x}_", c as u32);
                    }
                }
            }
        }
        Escaping::AllowUtf8 => push_quoted_content(out, s),
    }
}

/// Appends a metric name in a HELP or TYPE line, or a sample name outside braces.
///
/// Under `allow-utf-8` a non-legacy name is quoted; callers placing a sample name
/// inside braces use [`push_quoted_content`] themselves.
pub fn push_metric_name(out: &mut String, s: &str, escaping: Escaping) {
    if s.is_empty() {
        return;
    }
    match escaping {
        Escaping::AllowUtf8 if !is_legacy_metric_name(s) => {
            out.push('"');
            push_quoted_content(out, s);
            out.push('"');
        }
        Escaping::Underscores | Escaping::Values | Escaping::AllowUtf8
            if is_legacy_metric_name(s) =>
        {
            out.push_str(s)
        }
        _ => push_rewritten(out, s, escaping, is_metric_rune),
    }
}

/// Appends a label name.
pub fn push_label_name(out: &mut String, s: &str, escaping: Escaping) {
    if s.is_empty() {
        return;
    }
    match escaping {
        Escaping::AllowUtf8 if !is_legacy_label_name(s) => {
            out.push('"');
            push_quoted_content(out, s);
            out.push('"');
        }
        Escaping::Underscores | Escaping::Values | Escaping::AllowUtf8
            if is_legacy_label_name(s) =>
        {
            out.push_str(s)
        }
        _ => push_rewritten(out, s, escaping, is_label_rune),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str, e: Escaping) -> String {
        let mut out = String::new();
        push_metric_name(&mut out, s, e);
        out
    }

    #[test]
    fn values_and_help() {
        let mut v = String::new();
        push_quoted_content(&mut v, "/a\"b\\c\nd é\t");
        assert_eq!(v, "/a\\\"b\\\\c\\nd é\t");
        let mut h = String::new();
        push_help_text(&mut h, "Requests \"quoted\" \\ back\nnewline");
        assert_eq!(h, "Requests \"quoted\" \\\\ back\\nnewline");
        let mut o = String::new();
        push_help_openmetrics(&mut o, "say \"hi\"");
        assert_eq!(o, "say \\\"hi\\\"");
    }

    #[test]
    fn name_schemes() {
        assert_eq!(name("a:b_c", Escaping::Underscores), "a:b_c");
        assert_eq!(name("my.metric", Escaping::Underscores), "my_metric");
        assert_eq!(name("1x", Escaping::Underscores), "_x");
        assert_eq!(name("my.metric", Escaping::AllowUtf8), "\"my.metric\"");
        assert_eq!(name("my.metric_x", Escaping::Dots), "my_dot_metric__x");
        assert_eq!(name("my.métric", Escaping::Values), "U__my_2e_m_e9_tric");
        assert_eq!(name("ok", Escaping::Values), "ok");
    }

    proptest! {
        #[test]
        fn escaped_values_have_no_raw_specials(s in "\\PC*") {
            let mut out = String::new();
            push_quoted_content(&mut out, &s);
            prop_assert!(!out.contains('\n'));
            // Every quote is preceded by an odd run of backslashes.
            let b = out.as_bytes();
            for (i, &c) in b.iter().enumerate() {
                if c == b'"' {
                    let run = b[..i].iter().rev().take_while(|&&x| x == b'\\').count();
                    prop_assert!(run % 2 == 1);
                }
            }
        }

        #[test]
        fn underscores_always_gives_a_legacy_name(s in "\\PC{1,20}") {
            let out = name(&s, Escaping::Underscores);
            prop_assert!(is_legacy_metric_name(&out));
        }
    }
}
