//! The merged output: families of samples, as the merge fills them and render reads them.

use super::MetricType;
use std::sync::Arc;

/// Label pairs sorted by name, shared between every sample (and every file) that has them.
pub type LabelSet = Arc<[(Box<str>, Box<str>)]>;

/// A merged family, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The family name (a counter's without `_total`).
    pub name: Arc<str>,
    /// Help text.
    pub help: Arc<str>,
    /// Type.
    pub typ: MetricType,
    /// Samples, grouped by label set and sorted.
    pub samples: Vec<Sample>,
}

/// A merged sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample name, e.g. `lat_seconds_bucket`.
    pub name: Arc<str>,
    /// Labels from the key, sorted by name.
    pub labels: LabelSet,
    /// The `pid` label of a per-process gauge series; it replaces a `pid` in `labels`.
    pub pid: Option<Arc<str>>,
    /// The `le` bound of a histogram bucket.
    pub le: Option<f64>,
    /// The value.
    pub value: f64,
    /// `name{labels}` as rendered with the default (`underscores`) escaping, kept by the
    /// merge plan so a steady pass spells only values; `None` means render it.
    pub prefix: Option<Arc<str>>,
}

impl Sample {
    /// A sample without `pid`, `le` or a kept prefix; `labels` must be sorted by name.
    pub fn new(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (Box::from(*k), Box::from(*v)))
                .collect(),
            pid: None,
            le: None,
            value,
            prefix: None,
        }
    }
}
