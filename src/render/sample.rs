//! Sample lines, the same in every format: `name{labels} value`, or
//! `{"name",labels} value` for a UTF-8 name under `allow-utf-8`.
//!
//! Label sets come spelled (`model::labels`): when the sample name and every label name
//! are legacy names, which every scheme but `dots` leaves alone, a line is the name, the
//! label text copied whole with the sample's `le` or `pid` put in its place, and the
//! value. Otherwise it is spelled label by label with the negotiated scheme.

use super::escape::{self, Escaping};
use super::float;
use crate::model::{Family, Sample};

/// What the samples of one family share, worked out once per family.
struct Shared {
    /// Per sample name of the layout: `name{` when it is a legacy name (written as it
    /// is), `None` otherwise.
    opened: Vec<Option<String>>,
    /// Per `pid` of the layout: `pid="…"`.
    pids: Vec<String>,
    /// Per bound of the layout: `le="…"`.
    bounds: Vec<String>,
}

/// `name="value"` with the value escaped.
fn pair(name: &str, value: &str) -> String {
    let mut s = String::with_capacity(name.len() + value.len() + 3);
    s.push_str(name);
    s.push_str("=\"");
    escape::push_quoted_content(&mut s, value);
    s.push('"');
    s
}

/// The sample lines of `family`.
pub(super) fn push_samples(out: &mut String, family: &Family, escaping: Escaping) {
    let layout = &family.layout;
    let shared = Shared {
        opened: layout
            .names()
            .iter()
            .map(|n| escape::is_legacy_metric_name(n).then(|| format!("{n}{{")))
            .collect(),
        pids: layout.pids().iter().map(|p| pair("pid", p)).collect(),
        bounds: layout
            .bounds()
            .iter()
            .map(|&b| {
                let mut spelled = String::new();
                float::push_go(&mut spelled, b);
                pair("le", &spelled)
            })
            .collect(),
    };
    // Legacy names are left alone by every scheme but `dots`, which doubles `_`.
    let legacy_as_is = escaping != Escaping::Dots;
    for sample in family.samples() {
        let as_spelled =
            legacy_as_is && (!sample.labels.has_quoted_names() || escaping == Escaping::AllowUtf8);
        if !(as_spelled && push_spelled(out, &sample, &shared)) {
            push_prefix(out, &sample, escaping);
            out.push(' ');
        }
        float::push_go(out, sample.value);
        out.push('\n');
    }
}

/// `name{labels} ` from the spelled label text and the family's spelled pieces; `false`
/// (having written nothing) when the sample does not fit that shape.
#[inline]
fn push_spelled(out: &mut String, s: &Sample<'_>, shared: &Shared) -> bool {
    let Some(Some(opened)) = shared.opened.get(s.name_index as usize) else {
        return false;
    };
    let text = s.labels.text();
    let extra = match (s.pid_index, s.bound_index) {
        (None, None) => {
            if text.is_empty() {
                // `name{` without its brace.
                out.push_str(&opened[..opened.len() - 1]);
                out.push(' ');
            } else {
                out.reserve(opened.len() + text.len() + 2);
                out.push_str(opened);
                out.push_str(text);
                out.push_str("} ");
            }
            return true;
        }
        (Some(p), None) => shared.pids.get(p as usize),
        (None, Some(b)) => shared.bounds.get(b as usize),
        (Some(_), Some(_)) => None,
    };
    let (Some(extra), Some(at)) = (extra, s.extra_at) else {
        return false;
    };
    let at = at as usize;
    let (Some(head), Some(tail)) = (text.get(..at), text.get(at..)) else {
        return false;
    };
    out.reserve(opened.len() + text.len() + extra.len() + 3);
    out.push_str(opened);
    out.push_str(head);
    if tail.is_empty() && !head.is_empty() {
        out.push(',');
    }
    out.push_str(extra);
    if !tail.is_empty() {
        out.push(',');
        out.push_str(tail);
    }
    out.push_str("} ");
    true
}

/// Everything of a sample line before the value, label by label.
fn push_prefix(out: &mut String, s: &Sample<'_>, escaping: Escaping) {
    let quoted_name = escaping == Escaping::AllowUtf8 && !escape::is_legacy_metric_name(s.name);
    let has_labels = !s.labels.is_empty() || s.pid.is_some() || s.le.is_some();
    if quoted_name {
        out.push_str("{\"");
        escape::push_quoted_content(out, s.name);
        out.push('"');
        if has_labels {
            out.push(',');
        }
    } else {
        escape::push_metric_name(out, s.name, escaping);
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
fn push_labels(out: &mut String, s: &Sample<'_>, escaping: Escaping) {
    let mut le_buf = String::new();
    let le = s.le.map(|b| {
        float::push_go(&mut le_buf, b);
        ("le", le_buf.as_str())
    });
    let pid = s.pid.map(|p| ("pid", p));
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
        let name: &str = &name;
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
        emit(out, name, &value);
    }
    for (extra, v) in extras {
        emit(out, extra, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LabelSet, LayoutBuilder, MetricType};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// Renders every sample both ways: from the spelled text and label by label.
    fn both_ways(family: &Family, escaping: Escaping) -> (String, String) {
        let mut fast = String::new();
        push_samples(&mut fast, family, escaping);
        let mut slow = String::new();
        for s in family.samples() {
            push_prefix(&mut slow, &s, escaping);
            slow.push(' ');
            float::push_go(&mut slow, s.value);
            slow.push('\n');
        }
        (fast, slow)
    }

    #[test]
    fn extras_go_where_they_sort() {
        let mut b = LayoutBuilder::default();
        let labels = LabelSet::new([("a", "1"), ("z", "q\"")]);
        let empty = LabelSet::new([]);
        let pid: Arc<str> = Arc::from("12");
        b.push(&Arc::from("h_bucket"), &labels, None, Some(0.25));
        b.push(&Arc::from("h_bucket"), &empty, None, Some(f64::INFINITY));
        b.push(&Arc::from("g"), &labels, Some(&pid), None);
        b.push(
            &Arc::from("g"),
            &LabelSet::new([("pid", "9")]),
            Some(&pid),
            None,
        );
        b.push(&Arc::from("c"), &empty, None, None);
        let f = Family::new(
            "h".into(),
            "".into(),
            MetricType::Histogram,
            Arc::new(b.finish()),
            [Some(1.0); 5],
        );
        let (fast, slow) = both_ways(&f, Escaping::Underscores);
        assert_eq!(fast, slow);
        assert_eq!(
            fast,
            "h_bucket{a=\"1\",le=\"0.25\",z=\"q\\\"\"} 1.0\nh_bucket{le=\"+Inf\"} 1.0\n\
             g{a=\"1\",pid=\"12\",z=\"q\\\"\"} 1.0\ng{pid=\"12\"} 1.0\nc 1.0\n"
        );
    }

    proptest! {
        #[test]
        fn spelled_lines_equal_label_by_label_lines(
            mut pairs in proptest::collection::vec(("[a-q.é_]{1,4}", "\\PC{0,4}"), 0..4),
            name in "[a-z][a-z.:]{0,4}",
            extra in 0u8..4,
            escaping in 0u8..4,
        ) {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|a, b| a.0 == b.0);
            let labels = LabelSet::new(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let pid: Arc<str> = Arc::from("3");
            let mut b = LayoutBuilder::default();
            let (p, le) = match extra {
                0 => (None, None),
                1 => (Some(&pid), None),
                2 => (None, Some(0.5)),
                _ => (Some(&pid), Some(1e-9)),
            };
            b.push(&Arc::from(name.as_str()), &labels, p, le);
            let f = Family::new("f".into(), "".into(), MetricType::Gauge, Arc::new(b.finish()), [Some(2.0)]);
            let escaping = [Escaping::Underscores, Escaping::Dots, Escaping::Values, Escaping::AllowUtf8][escaping as usize];
            let (fast, slow) = both_ways(&f, escaping);
            prop_assert_eq!(fast, slow);
        }
    }
}
