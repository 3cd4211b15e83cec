//! Files written by our writer (used by the demo pool and, later, compaction) are read by
//! prometheus_client's own collector to the same result as by our reader.

use crate::util::{assert_no_diffs, differential};
use multiproc_exporter::model::GaugeMode;
use multiproc_exporter::write::DbWriter;

#[test]
fn prometheus_client_reads_our_files_as_we_do() {
    let (tmp, dir) = crate::util::temp_mp();
    let labels = [
        "",
        "plain",
        "quote\"d",
        "back\\slash",
        "new\nline",
        "caf\u{e9} \u{1F600}",
    ];
    for pid in [11, 22, 333] {
        let open = |prefix: &str| DbWriter::open(&dir.join(format!("{prefix}_{pid}.db"))).unwrap();
        let mut c = open("counter");
        for (i, v) in labels.iter().enumerate() {
            c.set_sample(
                "req",
                "req_total",
                &[("v", v)],
                "Requests \"x\" \\ y\nz",
                (i + pid) as f64,
                0.0,
            )
            .unwrap();
        }
        let mut h = open("histogram");
        h.set_sample(
            "lat",
            "lat_sum",
            &[("m", "GET")],
            "latency",
            2.5 * pid as f64,
            0.0,
        )
        .unwrap();
        for (le, n) in [("0.1", 1.0), ("1.0", 2.0), ("1e+06", 3.0), ("+Inf", 1.0)] {
            h.set_sample(
                "lat",
                "lat_bucket",
                &[("le", le), ("m", "GET")],
                "latency",
                n,
                0.0,
            )
            .unwrap();
        }
        let mut s = open("summary");
        s.set_sample("sz", "sz_count", &[], "size", 3.0, 0.0)
            .unwrap();
        s.set_sample("sz", "sz_sum", &[], "size", 1e300, 0.0)
            .unwrap();
        for mode in GaugeMode::KNOWN {
            let mut g = open(&format!("gauge_{}", mode.token()));
            let name = format!("g_{}", mode.token());
            let ts = if matches!(mode, GaugeMode::MostRecent | GaugeMode::LiveMostRecent) {
                1_700_000_000.0 + pid as f64
            } else {
                0.0
            };
            for (i, v) in [f64::INFINITY, -0.0, 5e-324, -(pid as f64), 1234567.0]
                .iter()
                .enumerate()
            {
                g.set_sample(&name, &name, &[("i", &i.to_string())], "gauge", *v, ts)
                    .unwrap();
            }
        }
    }
    let reports = differential(&[dir], tmp.path());
    assert!(reports[0].samples > 50);
    assert_no_diffs(&reports);
}
