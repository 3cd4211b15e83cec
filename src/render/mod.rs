//! Stage 5: write merged families in a Prometheus exposition format.
//!
//! The output is what prometheus_client's `generate_latest` writes for the same families
//! (text 0.0.4, text 1.0.0, OpenMetrics 1.0.0), with one deliberate difference: in
//! OpenMetrics, prometheus_client passes sample names through the *label* name check, so
//! `a:b` becomes `a_b` in sample lines while its `# TYPE` line says `a:b`, which no
//! parser can reconcile; we keep metric-name rules for both.
//!
//! One file per format ([`text`], [`openmetrics`]) writes what differs (the HELP and TYPE
//! lines, the end marker); sample lines are common (`render/sample.rs`). [`Format`] names a
//! format with its version and escaping, and is the only place that spells a
//! `Content-Type`. Writing goes into one reused `String` with our own escaping
//! ([`escape`]) and number spelling ([`float`]); nothing here allocates per sample: label
//! sets come spelled, and a line whose names are all legacy names copies that text.
//!
//! Render depends on [`crate::model`] only.

pub mod escape;
pub mod float;
pub mod openmetrics;
mod sample;
pub mod text;

use crate::model::Family;
use escape::Escaping;

/// The version of OpenMetrics a scraper asked for; both are written alike (0.0.1 is
/// what Prometheus before 2.x calls the same text), and echoed in `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OmVersion {
    /// `version=1.0.0`.
    V1_0_0,
    /// `version=0.0.1`.
    V0_0_1,
}

impl OmVersion {
    /// The `version=` parameter value.
    pub fn as_param(self) -> &'static str {
        match self {
            OmVersion::V1_0_0 => "1.0.0",
            OmVersion::V0_0_1 => "0.0.1",
        }
    }
}

/// An exposition format: media type, version and name escaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/plain; version=0.0.4`: legacy names only (escaped with underscores).
    Text004,
    /// `text/plain; version=1.0.0; escaping=...`.
    Text1(Escaping),
    /// `application/openmetrics-text; version=...; escaping=...`.
    OpenMetrics(OmVersion, Escaping),
}

impl Format {
    /// OpenMetrics 1.0.0 with the default escaping, as `render --format openmetrics`
    /// prints it.
    pub const OPENMETRICS: Format = Format::OpenMetrics(OmVersion::V1_0_0, Escaping::Underscores);

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> String {
        match self {
            Format::Text004 => "text/plain; version=0.0.4; charset=utf-8".to_owned(),
            Format::Text1(e) => format!(
                "text/plain; version=1.0.0; charset=utf-8; escaping={}",
                e.as_param()
            ),
            Format::OpenMetrics(v, e) => format!(
                "application/openmetrics-text; version={}; charset=utf-8; escaping={}",
                v.as_param(),
                e.as_param()
            ),
        }
    }

    /// How names outside the legacy character set are written.
    pub fn escaping(self) -> Escaping {
        match self {
            Format::Text004 => Escaping::Underscores,
            Format::Text1(e) | Format::OpenMetrics(_, e) => e,
        }
    }
}

/// Appends the exposition of `families` to `out`. OpenMetrics output ends with `# EOF`.
///
/// A large exposition (the 88,512 samples of the L of DESIGN section 6) is rendered in
/// two halves at once, the second into a buffer of its own that is then appended: the
/// copy costs a tenth of what the half took (see [`crate::parallel`]).
pub fn render(families: &[Family], format: Format, out: &mut String) {
    let samples: usize = families.iter().map(Family::len).sum();
    let threads = if samples < PARALLEL_FROM {
        1
    } else {
        crate::parallel::threads()
    };
    render_on(families, format, out, threads);
}

/// Below this many samples one thread renders: a thread's start and the copy of the
/// second half would cost more than they save.
const PARALLEL_FROM: usize = 16_384;

/// [`render`] on `threads` threads (1 or 2).
fn render_on(families: &[Family], format: Format, out: &mut String, threads: usize) {
    if threads >= 2 && families.len() >= 2 {
        let samples = families.iter().map(Family::len).sum();
        let cut = crate::parallel::half_by(families, samples, Family::len);
        let (first, rest) = families.split_at(cut);
        let mut tail = String::new();
        crate::parallel::join(
            || push_families(first, format, out),
            || {
                tail.reserve(rest.iter().map(|f| f.len() * 80 + 64).sum());
                push_families(rest, format, &mut tail);
            },
        );
        out.push_str(&tail);
    } else {
        push_families(families, format, out);
    }
    if let Format::OpenMetrics(..) = format {
        openmetrics::push_end(out);
    }
}

/// The families of `families`, in order, without what ends an exposition.
fn push_families(families: &[Family], format: Format, out: &mut String) {
    let escaping = format.escaping();
    for family in families {
        match format {
            Format::Text004 | Format::Text1(_) => text::push_family(out, family, escaping),
            Format::OpenMetrics(..) => openmetrics::push_family(out, family, escaping),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Collector;
    use crate::write::DbWriter;

    /// The fast path beside the general one: an exposition rendered in two halves on
    /// two threads is the one rendered on one, byte for byte, in every format.
    #[test]
    fn test_issue_11_two_threads_render_what_one_does() {
        let d = tempfile::tempdir().unwrap();
        let mut w = DbWriter::open(&d.path().join("histogram_1.db")).unwrap();
        for i in 0..1500 {
            let id = i.to_string();
            for le in ["0.1", "1.0", "+Inf"] {
                let labels = [("i", id.as_str()), ("le", le)];
                w.set_sample("h", "h_bucket", &labels, "h", 1.0, 0.0)
                    .unwrap();
            }
            w.set_sample("h", "h_sum", &[("i", &id)], "h", 0.5, 0.0)
                .unwrap();
        }
        let mut c = DbWriter::open(&d.path().join("counter_1.db")).unwrap();
        for f in 0..40 {
            for i in 0..400 {
                let (name, id) = (format!("c{f}_total"), i.to_string());
                c.set_sample(
                    &format!("c{f}"),
                    &name,
                    &[("i", &id)],
                    "a \\ help",
                    i as f64 * 1.5,
                    0.0,
                )
                .unwrap();
            }
        }
        let families = Collector::new(d.path())
            .collect(&Default::default())
            .unwrap()
            .families;
        assert!(families.iter().map(Family::len).sum::<usize>() >= PARALLEL_FROM);
        for format in [
            Format::Text004,
            Format::Text1(Escaping::Underscores),
            Format::OPENMETRICS,
        ] {
            let (mut one, mut two) = (String::new(), String::new());
            render_on(&families, format, &mut one, 1);
            render_on(&families, format, &mut two, 2);
            assert!(one.len() > 500_000, "{}", one.len());
            assert!(one == two, "{format:?} differs");
        }
    }
}
