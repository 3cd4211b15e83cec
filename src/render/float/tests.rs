use super::*;
use proptest::prelude::*;

#[test]
fn matches_prometheus_client_0_26() {
    // Each pair was printed by prometheus_client.utils.floatToGoString (0.26.0). The
    // 1M-value comparison against the real function is the integration test
    // `test_issue_11_spelling_matches_prometheus_client_on_a_million_values`.
    let cases: &[(f64, &str)] = &[
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123456.0, "123456.0"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1000000.5, "1.0000005e+06"),
        (1e10, "1e+10"),
        (9999999999999998.0, "9.999999999999998e+15"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (1e300, "1e+300"),
        (-1234567.0, "-1234567.0"),
        (-1e16, "-1e+16"),
        (-0.00001, "-1e-05"),
        (5e-324, "5e-324"),
        (9007199254740993.0, "9.007199254740992e+15"),
        (0.005, "0.005"),
        (1e7, "1e+07"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
        (-f64::NAN, "NaN"),
        (f64::MAX, "1.7976931348623157e+308"),
        (123.456, "123.456"),
        (-2.0, "-2.0"),
        (100.0, "100.0"),
        (999999.0, "999999.0"),
        (-999999999999999.0, "-999999999999999.0"),
        (-1e15, "-1000000000000000.0"),
        (-9.0e15, "-9000000000000000.0"),
        (123456.5, "123456.5"),
    ];
    check(cases);
}

#[test]
// The literals are the doubles' exact values: that they need 18 digits is the point.
#[allow(clippy::excessive_precision)]
fn breaks_exact_ties_to_even_like_repr() {
    // Also printed by floatToGoString 0.26.0; each value lies exactly halfway between
    // two 17-digit decimals, where Rust's `{:e}` rounds the last digit up.
    check(&[
        (201409170638417.125, "2.0140917063841712e+14"),
        (-201409170638417.125, "-201409170638417.12"),
        (1090377292581276.3, "1.0903772925812762e+15"),
        (2009750602602279.3, "2.0097506026022792e+15"),
        (-200159416377148.13, "-200159416377148.12"),
    ]);
}

#[test]
fn edges_match_prometheus_client_0_26() {
    // Printed by floatToGoString 0.26.0: subnormals, the switches between fixed and
    // exponent forms, integral values around 2^53 and beyond 1e16.
    check(&[
        (0.30000000000000004, "0.30000000000000004"),
        (-5e-324, "-5e-324"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (2.225073858507201e-308, "2.225073858507201e-308"),
        (9007199254740992.0, "9.007199254740992e+15"),
        (9007199254740994.0, "9.007199254740994e+15"),
        (-9999999999999998.0, "-9999999999999998.0"),
        (1e17, "1e+17"),
        (12345678901234567890.0, "1.2345678901234567e+19"),
        (1e22, "1e+22"),
        (1e23, "1e+23"),
        (0.00011, "0.00011"),
        (-0.0001, "-0.0001"),
        (9.999999999999999e-05, "9.999999999999999e-05"),
        (999999.9999999999, "999999.9999999999"),
        (1000000.0000000001, "1.0000000000000001e+06"),
        (1e15, "1e+15"),
        (123456789012345.6, "1.234567890123456e+14"),
        (1e-07, "1e-07"),
        (1.5e-07, "1.5e-07"),
        (4.35e+17, "4.35e+17"),
        (-1e+100, "-1e+100"),
    ]);
}

fn check(cases: &[(f64, &str)]) {
    for &(x, want) in cases {
        assert_eq!(go(x), want, "spelling of {x:e}");
    }
}

#[test]
fn parses_every_form_a_crate_prints() {
    let digits = |text| {
        Digits::parse(text).map(|d| {
            (
                String::from_utf8_lossy(d.digits(0..d.len)).into_owned(),
                d.exp,
            )
        })
    };
    let some = |s: &str, exp| Some((s.to_owned(), exp));
    assert_eq!(digits("123.45"), some("12345", 2));
    assert_eq!(digits("0.00123"), some("123", -3));
    assert_eq!(digits("12340000000.0"), some("1234", 10));
    assert_eq!(digits("1000000"), some("1", 6));
    assert_eq!(digits("100.001"), some("100001", 2));
    assert_eq!(digits("1e16"), some("1", 16));
    assert_eq!(digits("1.5e-7"), some("15", -7));
    assert_eq!(digits("1.5E+300"), some("15", 300));
    assert_eq!(digits("5e-324"), some("5", -324));
    assert_eq!(digits("12345678901234567"), some("12345678901234567", 16));
}

#[test]
fn rejects_what_is_not_a_positive_number() {
    for text in [
        "",
        ".",
        "0",
        "0.0",
        "-1",
        "1..2",
        "1.2.3",
        "1e",
        "1ee3",
        "inf",
        "NaN",
        "1e99999999999",
        "123456789012345678",
    ] {
        assert_eq!(Digits::parse(text), None, "{text:?}");
    }
}

#[test]
fn unknown_text_is_copied_rather_than_lost() {
    let mut out = String::new();
    push_text(&mut out, true, "inf");
    assert_eq!(out, "-inf");
}

proptest! {
    #[test]
    fn integers_spell_as_their_shortest_digits(n in 1i64..10_000_000_000_000_000, zeros in 0u32..8, neg: bool) {
        let n = (n / 10i64.pow(zeros)).max(1) * 10i64.pow(zeros) * if neg { -1 } else { 1 };
        let x = n as f64;
        prop_assume!(x.abs() < INTEGRAL);
        let (mut fast, mut general) = (String::new(), String::new());
        push_go(&mut fast, x);
        push_shortest(&mut general, x);
        prop_assert_eq!(fast, general);
    }

    #[test]
    fn zmij_fixed_text_is_what_digits_spell(x in 1e-4f64..1e16, neg: bool) {
        prop_assume!(neg || x < 1e6);
        let x = if neg { -x } else { x };
        let (mut direct, mut laid_out) = (String::new(), String::new());
        push_shortest(&mut direct, x);
        push_text(&mut laid_out, neg, zmij::Buffer::new().format_finite(x.abs()));
        prop_assert_eq!(direct, laid_out);
    }

    #[test]
    fn round_trips(x in any::<f64>()) {
        let s = go(x);
        let back: f64 = match s.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other.parse().unwrap(),
        };
        prop_assert!(back.to_bits() == x.to_bits() || (x.is_nan() && back.is_nan()));
    }

    #[test]
    fn round_trips_near_integers_and_ties(k in 0u64..(1 << 53), frac in 0u32..16, shift in -60i32..60) {
        let x = (k as f64 + f64::from(frac) / 16.0) * 2f64.powi(shift);
        for x in [x, -x] {
            let back: f64 = go(x).parse().unwrap();
            prop_assert_eq!(back.to_bits(), x.to_bits(), "{}", go(x));
        }
    }

    #[test]
    fn any_text_parses_without_panicking(text in "[-+.eE0-9]{0,30}") {
        let _ = Digits::parse(&text);
    }
}
