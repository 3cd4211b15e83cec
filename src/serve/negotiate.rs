//! Content negotiation: which exposition format and encoding a scraper gets.
//!
//! Scrapers rank formats with q-values (Prometheus computes them from the position in
//! its `scrape_protocols`, and the numbers changed between releases), so this parses the
//! header and never matches strings. Unsupported types (protobuf, JSON, OpenMetrics 2)
//! are skipped; text 0.0.4 is the answer when nothing we support is ranked, because that
//! is what every scraper and every human can read.

use crate::render::escape::Escaping;
use crate::render::{Format, OmVersion};

/// Chooses the format for an `Accept` header (absent means anything); the response's
/// `Content-Type` is [`Format::content_type`] of the answer.
pub fn negotiate(accept: Option<&str>) -> Format {
    let mut best: Option<(f32, Format)> = None;
    for range in accept.unwrap_or("").split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version: Option<String> = None;
        let mut escaping = Escaping::Underscores;
        for param in parts {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = v.parse().unwrap_or(0.0),
                "version" => version = Some(v.to_owned()),
                "escaping" => escaping = Escaping::from_param(v).unwrap_or(Escaping::Underscores),
                _ => {}
            }
        }
        if q <= 0.0 || q.is_nan() {
            continue;
        }
        let choice = match (media.as_str(), version.as_deref()) {
            ("application/openmetrics-text", None | Some("1.0.0")) => {
                Some(Format::OpenMetrics(OmVersion::V1_0_0, escaping))
            }
            ("application/openmetrics-text", Some("0.0.1")) => {
                Some(Format::OpenMetrics(OmVersion::V0_0_1, escaping))
            }
            ("text/plain", Some("1.0.0")) => Some(Format::Text1(escaping)),
            ("text/plain", None | Some("0.0.4")) | ("text/*" | "*/*", _) => Some(Format::Text004),
            _ => None,
        };
        let Some(format) = choice else {
            continue;
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Text004, |(_, format)| format)
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*` with a non-zero q, and gzip not
/// refused explicitly).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let mut gzip: Option<f32> = None;
    let mut star: Option<f32> = None;
    for coding in accept_encoding.unwrap_or("").split(',') {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse().unwrap_or(0.0));
        match name.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => star = Some(q),
            _ => {}
        }
    }
    gzip.or(star).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(accept: &str) -> String {
        negotiate(Some(accept)).content_type()
    }

    const OM_U: &str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";

    #[test]
    fn prometheus_2_before_2_49() {
        let h = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(ct(h), OM_U);
    }

    #[test]
    fn prometheus_2_49_to_2_55_and_proto_first() {
        let h = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(ct(h), OM_U);
        let p = format!(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,{h}"
        );
        assert_eq!(ct(&p), OM_U);
    }

    #[test]
    fn prometheus_3_escaping() {
        let h = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        let n = negotiate(Some(h));
        assert_eq!(
            n,
            Format::OpenMetrics(OmVersion::V1_0_0, Escaping::AllowUtf8)
        );
        assert!(n.content_type().ends_with("escaping=allow-utf-8"));
        let u = h.replace("allow-utf-8", "underscores");
        assert_eq!(ct(&u), OM_U);
    }

    #[test]
    fn text_1_0_0_ranked_first() {
        let n = negotiate(Some(
            "text/plain;version=1.0.0;escaping=dots,application/openmetrics-text;q=0.5",
        ));
        assert_eq!(n, Format::Text1(Escaping::Dots));
        assert_eq!(
            n.content_type(),
            "text/plain; version=1.0.0; charset=utf-8; escaping=dots"
        );
    }

    #[test]
    fn humans_and_unknown_types_get_text_0_0_4() {
        let text = "text/plain; version=0.0.4; charset=utf-8";
        for h in [
            "*/*",
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
            "application/json",
            "",
            "text/plain",
            "application/openmetrics-text;version=2.0.0",
            "application/openmetrics-text;q=0",
        ] {
            assert_eq!(ct(h), text, "{h}");
        }
        assert_eq!(negotiate(None).content_type(), text);
    }

    #[test]
    fn openmetrics_0_0_1_is_echoed() {
        assert_eq!(
            ct("application/openmetrics-text;version=0.0.1"),
            "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores"
        );
    }

    #[test]
    fn gzip() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(Some("gzip;q=0, *")));
        assert!(!accepts_gzip(None));
    }
}
