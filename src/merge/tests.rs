//! Merge rules over files built with our writer, checked against values worked out by
//! hand from prometheus_client's `_accumulate_metrics`.

use crate::collect::Collector;
use crate::model::Family;
use crate::write::DbWriter;
use std::collections::BTreeSet;
use std::path::Path;

const NONE_DEAD: &BTreeSet<String> = &BTreeSet::new();

fn set(dir: &Path, file: &str, metric: &str, name: &str, labels: &[(&str, &str)], v: f64, ts: f64) {
    let mut w = DbWriter::open(&dir.join(file)).unwrap();
    w.set_sample(metric, name, labels, "help", v, ts).unwrap();
}

fn families(dir: &Path) -> Vec<Family> {
    Collector::new(dir).collect(NONE_DEAD).unwrap().families
}

fn values(f: &Family) -> Vec<(String, Option<String>, f64)> {
    f.samples()
        .map(|s| (s.name.to_string(), s.pid.map(str::to_owned), s.value))
        .collect()
}

#[test]
fn gauge_modes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for (mode, a, b) in [("min", 3.0, 1.0), ("max", 3.0, 1.0), ("sum", 3.0, 1.0)] {
        set(p, &format!("gauge_{mode}_1.db"), mode, mode, &[], a, 0.0);
        set(p, &format!("gauge_{mode}_2.db"), mode, mode, &[], b, 0.0);
    }
    set(p, "gauge_mostrecent_1.db", "mr", "mr", &[], 5.0, 20.0);
    set(p, "gauge_mostrecent_2.db", "mr", "mr", &[], 7.0, 10.0);
    set(p, "gauge_mostrecent_3.db", "never", "never", &[], 0.0, 0.0);
    set(p, "gauge_all_1.db", "al", "al", &[], 1.0, 0.0);
    set(p, "gauge_all_2.db", "al", "al", &[], 2.0, 0.0);
    let fams = families(p);
    let get = |n: &str| fams.iter().find(|f| &*f.name == n).unwrap();
    assert_eq!(values(get("min")), vec![("min".into(), None, 1.0)]);
    assert_eq!(values(get("max")), vec![("max".into(), None, 3.0)]);
    assert_eq!(values(get("sum")), vec![("sum".into(), None, 4.0)]);
    assert_eq!(values(get("mr")), vec![("mr".into(), None, 5.0)]);
    assert!(get("never").is_empty());
    assert_eq!(
        values(get("al")),
        vec![
            ("al".into(), Some("1".into()), 1.0),
            ("al".into(), Some("2".into()), 2.0)
        ]
    );
}

#[test]
fn histogram_buckets_accumulate_and_count_is_synthesised() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for (file, le, v) in [
        ("histogram_1.db", "1.0", 1.0),
        ("histogram_1.db", "+Inf", 0.0),
        ("histogram_2.db", "1.0", 2.0),
        ("histogram_2.db", "+Inf", 3.0),
        ("histogram_2.db", "0.5", 1.0),
    ] {
        set(p, file, "h", "h_bucket", &[("le", le)], v, 0.0);
    }
    set(p, "histogram_1.db", "h", "h_sum", &[], 2.5, 0.0);
    let fams = families(p);
    let h = &fams[0];
    let got: Vec<(String, Option<f64>, f64)> = h
        .samples()
        .map(|s| (s.name.to_string(), s.le, s.value))
        .collect();
    assert_eq!(
        got,
        vec![
            ("h_bucket".into(), Some(0.5), 1.0),
            ("h_bucket".into(), Some(1.0), 4.0),
            ("h_bucket".into(), Some(f64::INFINITY), 7.0),
            ("h_count".into(), None, 7.0),
            ("h_sum".into(), None, 2.5),
        ]
    );
}

#[test]
fn first_sighting_decides_type_and_help_last_gauge_file_decides_mode() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // Sorted order: counter_1, gauge_max_1, gauge_sum_2.
    DbWriter::open(&p.join("counter_1.db"))
        .unwrap()
        .set_sample("dup", "dup_total", &[], "counter help", 1.0, 0.0)
        .unwrap();
    DbWriter::open(&p.join("gauge_max_1.db"))
        .unwrap()
        .set_sample("g", "g", &[], "first", 1.0, 0.0)
        .unwrap();
    DbWriter::open(&p.join("gauge_sum_2.db"))
        .unwrap()
        .set_sample("g", "g", &[], "second", 2.0, 0.0)
        .unwrap();
    let fams = families(p);
    let g = fams.iter().find(|f| &*f.name == "g").unwrap();
    assert_eq!(&*g.help, "first");
    assert_eq!(values(g), vec![("g".into(), None, 3.0)]);
}

#[test]
fn cached_plan_follows_values_and_rebuilds_on_new_entries() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let mut c = Collector::new(p);
    let mut w = DbWriter::open(&p.join("counter_1.db")).unwrap();
    w.set_sample("c", "c_total", &[("a", "1")], "h", 1.0, 0.0)
        .unwrap();
    let mut g = DbWriter::open(&p.join("gauge_max_1.db")).unwrap();
    g.set_sample("g", "g", &[], "h", 5.0, 0.0).unwrap();
    let first = c.collect(NONE_DEAD).unwrap().families;
    assert_eq!(values(&first[0]), vec![("c_total".into(), None, 1.0)]);
    assert_eq!(c.plans_built(), 1);
    // Same entries, new values: the plan is reused and the values follow.
    w.set_sample("c", "c_total", &[("a", "1")], "h", 4.0, 0.0)
        .unwrap();
    g.set_sample("g", "g", &[], "h", 7.0, 0.0).unwrap();
    let second = c.collect(NONE_DEAD).unwrap().families;
    assert_eq!(values(&second[0]), vec![("c_total".into(), None, 4.0)]);
    assert_eq!(values(&second[1]), vec![("g".into(), None, 7.0)]);
    // Regression (issue 8): the reuse is observed, not assumed.
    assert_eq!(c.plans_built(), 1, "a steady pass must reuse the plan");
    // A new entry and a new file: the plan is rebuilt.
    w.set_sample("c", "c_total", &[("a", "2")], "h", 2.0, 0.0)
        .unwrap();
    let mut w2 = DbWriter::open(&p.join("counter_2.db")).unwrap();
    w2.set_sample("c", "c_total", &[("a", "1")], "h", 10.0, 0.0)
        .unwrap();
    let third = c.collect(NONE_DEAD).unwrap().families;
    assert_eq!(c.plans_built(), 2, "new entries and files rebuild the plan");
    assert_eq!(
        values(&third[0]),
        vec![
            ("c_total".into(), None, 14.0),
            ("c_total".into(), None, 2.0)
        ]
    );
    // A file replaced under the same name starts over.
    drop(w2);
    std::fs::remove_file(p.join("counter_2.db")).unwrap();
    let mut w3 = DbWriter::open(&p.join("counter_2.db")).unwrap();
    w3.set_sample("c", "c_total", &[("a", "1")], "h", 1.0, 0.0)
        .unwrap();
    let fourth = c.collect(NONE_DEAD).unwrap().families;
    assert_eq!(values(&fourth[0])[0].2, 5.0);
}
