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
pub fn render(families: &[Family], format: Format, out: &mut String) {
    let escaping = format.escaping();
    match format {
        Format::Text004 | Format::Text1(_) => {
            for family in families {
                text::push_family(out, family, escaping);
            }
        }
        Format::OpenMetrics(..) => {
            for family in families {
                openmetrics::push_family(out, family, escaping);
            }
            openmetrics::push_end(out);
        }
    }
}
