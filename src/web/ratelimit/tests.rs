use super::*;
use crate::web::schema::parse;

#[test]
fn go_durations() {
    for (text, nanos) in [
        ("0", 0),
        ("1s", 1_000_000_000),
        ("+1s", 1_000_000_000),
        ("-1s", -1_000_000_000),
        ("250ms", 250_000_000),
        ("1m30s", 90_000_000_000),
        ("1.5h", 5_400_000_000_000),
        ("2h45m", 9_900_000_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
        ("10us", 10_000),
        ("10µs", 10_000),
        ("7ns", 7),
        ("1h1m1s1ms1us1ns", 3_661_001_001_001),
    ] {
        assert_eq!(parse_go_duration(text), Ok(nanos), "{text}");
    }
    for bad in [
        "",
        "1",
        "s",
        "1x",
        "1 s",
        ".s",
        "1..5s",
        "-",
        "1s2",
        "99999999999999999999h",
        "3000000h",
    ] {
        assert!(parse_go_duration(bad).is_err(), "{bad:?}");
    }
}

fn limit(yaml: &str) -> (Option<RateLimit>, Vec<Warning>) {
    let raw = parse(yaml).unwrap().rate_limit.unwrap();
    let mut warnings = Vec::new();
    let r = RateLimit::from_raw(&raw, &mut warnings).unwrap();
    (r, warnings)
}

#[test]
fn settings_as_exporter_toolkit_reads_them() {
    assert_eq!(
        limit("rate_limit:\n  interval: 0\n  burst: 0\n"),
        (None, vec![])
    );
    assert_eq!(limit("rate_limit:\n  burst: 3\n").0, None);
    let (r, w) = limit("rate_limit:\n  interval: 100ms\n  burst: 3\n");
    assert_eq!(
        r,
        Some(RateLimit {
            interval: Duration::from_millis(100),
            burst: 3
        })
    );
    assert!(w.is_empty());
    let (r, w) = limit("rate_limit:\n  interval: 1000000000\n  burst: 1\n");
    assert_eq!(r.unwrap().interval, Duration::from_secs(1));
    assert_eq!(
        w.len(),
        1,
        "an integer interval is nanoseconds, and warned about"
    );
}

#[test]
fn the_bucket_starts_full_and_refills_one_per_interval() {
    let b = TokenBucket::new(RateLimit {
        interval: Duration::from_secs(1),
        burst: 3,
    });
    let t0 = Instant::now();
    assert!(b.allow_at(t0) && b.allow_at(t0) && b.allow_at(t0));
    assert!(!b.allow_at(t0), "burst spent");
    assert!(!b.allow_at(t0 + Duration::from_millis(999)));
    assert!(b.allow_at(t0 + Duration::from_millis(1000)));
    assert!(!b.allow_at(t0 + Duration::from_millis(1500)));
    // A long pause fills it up to the burst, no further.
    let later = t0 + Duration::from_secs(3600);
    assert!((0..3).all(|_| b.allow_at(later)));
    assert!(!b.allow_at(later));
    // Time going backwards earns nothing and costs nothing.
    assert!(!b.allow_at(t0));
}

#[test]
fn a_burst_of_zero_refuses_everything() {
    let b = TokenBucket::new(RateLimit {
        interval: Duration::from_secs(1),
        burst: 0,
    });
    let t0 = Instant::now();
    assert!(!b.allow_at(t0));
    assert!(!b.allow_at(t0 + Duration::from_secs(100)));
}
