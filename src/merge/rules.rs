//! Family rules: what the files decide for each family, and where each family's series
//! and bucket groups are.
//!
//! The rules depend on read order (DESIGN section 3): type and help come from the first
//! sighting, the gauge rule from the last gauge file that mentions the family. A plan
//! keeps where those sightings were, so that when files gain entries it can tell whether
//! the new entries leave every rule as a fresh build would decide it ([`FamilyRule::admits`]);
//! when they do not, only a fresh build is exact.

use super::{FileView, Slot};
use crate::fold::Fold;
use crate::model::{FileKind, MetricType};
use crate::parse::{KeyInfo, KeyTable};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// Family rules by family id.
pub(super) type Rules = FxHashMap<u32, FamilyRule>;

/// What the files decide for one family, and its series so far.
#[derive(Debug)]
pub(super) struct FamilyRule {
    /// The type of the first sighting's file.
    pub(super) typ: MetricType,
    /// The help of the first sighting.
    pub(super) help: Arc<str>,
    /// The help's id, to compare a later sighting's with.
    help_id: u32,
    /// The file of the first sighting (an entry appended to an earlier file becomes the
    /// first sighting).
    first_file: usize,
    /// `(per process, fold)` of the last gauge file's mode.
    pub(super) gauge: Option<(bool, Fold)>,
    /// The last gauge file that mentions the family (where `gauge` comes from).
    last_gauge_file: Option<usize>,
    /// Output series of this family → slot, while `indexed`.
    pub(super) slots: FxHashMap<Slot, u32>,
    /// Whether `slots` holds every series of the family. A built plan drops the maps
    /// (kept, they would cost about 34 bytes per series for as long as the plan lives,
    /// a tenth of a series' whole cost); an extension makes a family's again from the
    /// files the first time an entry of that family is appended, and keeps it.
    pub(super) indexed: bool,
    /// (labels without `le`, pid file) → bucket group.
    pub(super) groups: FxHashMap<(u32, u32), u32>,
    /// Index of this family in the plan's output families (set once they are sorted).
    pub(super) out: usize,
}

impl FamilyRule {
    /// The rule a first sighting in file `fi` of kind `kind` starts.
    fn new(fi: usize, kind: &FileKind, info: &KeyInfo, keys: &KeyTable) -> FamilyRule {
        FamilyRule {
            typ: kind.metric_type(),
            help: keys.help(info.help).clone(),
            help_id: info.help,
            first_file: fi,
            gauge: None,
            last_gauge_file: None,
            slots: FxHashMap::default(),
            indexed: true,
            groups: FxHashMap::default(),
            out: 0,
        }
    }

    /// Drops the map of series to slots (see [`FamilyRule::indexed`]).
    pub(super) fn forget_slots(&mut self) {
        self.slots = FxHashMap::default();
        self.indexed = false;
    }

    /// Notes a sighting in gauge file `fi`: in file order, the last one decides.
    fn gauge_sighting(&mut self, fi: usize, kind: &FileKind) {
        if let FileKind::Gauge(mode) = kind {
            self.gauge = Some((mode.is_per_pid(), Fold::for_gauge(mode)));
            self.last_gauge_file = Some(fi);
        }
    }

    /// Takes in an entry appended to file `fi`, if a fresh build would decide this rule
    /// as it stands: `false` when the entry would be a new first sighting with another
    /// type or help, or would make a gauge file with another rule the last one.
    pub(super) fn admits(&mut self, fi: usize, kind: &FileKind, info: &KeyInfo) -> bool {
        if fi < self.first_file {
            if kind.metric_type() != self.typ || info.help != self.help_id {
                return false;
            }
            self.first_file = fi;
        }
        if let FileKind::Gauge(mode) = kind
            && self.last_gauge_file.is_none_or(|last| fi > last)
        {
            if self.gauge != Some((mode.is_per_pid(), Fold::for_gauge(mode))) {
                return false;
            }
            self.last_gauge_file = Some(fi);
        }
        true
    }
}

/// Type and help from the first sighting, gauge rule from the last gauge file.
pub(super) fn family_rules(files: &[FileView<'_>], keys: &KeyTable) -> Rules {
    let mut rules = Rules::default();
    for (fi, f) in files.iter().enumerate() {
        for e in f.entries.iter().take(f.values.len()) {
            let info = keys.info(e.key);
            let rule = rules
                .entry(info.family)
                .or_insert_with(|| FamilyRule::new(fi, f.kind, &info, keys));
            rule.gauge_sighting(fi, f.kind);
        }
    }
    rules
}
