//! Number spelling identical to prometheus_client 0.26.0's `floatToGoString`.
//!
//! That function prints Python's `repr` (shortest round-trip digits; fixed notation for
//! exponents -4..=15, always with a `.`), except that positive numbers with 7 to 16
//! integer digits switch to Go's exponent form (`1e+06`, `1.234567e+06`); negatives keep
//! Python's form (`-1234567.0`). Rust's `{}` differs in all of these, so we spell numbers
//! ourselves from the shortest digits that `{:e}` yields.

use std::fmt::Write;

/// Appends `x` spelled as prometheus_client spells sample values and `le` bounds.
pub fn push_go(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x == f64::INFINITY {
        out.push_str("+Inf");
    } else if x == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
    } else if x.fract() == 0.0 && x < 1e6 && x > -1e15 {
        // Integral values (most counters) in Python's fixed form: digits and ".0".
        // Positives from 1e6 take Go's exponent form below; negatives stay fixed to 1e16.
        push_integer(out, x as i64);
        out.push_str(".0");
    } else if x.fract() == 0.0 && (1e6..EXACT).contains(&x) {
        push_integer_exponent(out, x as u64);
    } else {
        push_shortest(out, x);
    }
}

/// Below 2^53 every integer is a double and its neighbours are integers too, so the
/// shortest digits that round-trip are its own decimal digits.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// An integer from 1e6 to 2^53 in Go's exponent form, e.g. `1.048576e+06`: what
/// [`push_shortest`] writes for it, from its own digits.
fn push_integer_exponent(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut m = n;
    while m > 0 {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    let digits = &digits[at..];
    let exp = digits.len() - 1;
    let mut end = digits.len();
    while end > 1 && digits[end - 1] == b'0' {
        end -= 1;
    }
    out.push(char::from(digits[0]));
    if end > 1 {
        out.push('.');
        out.extend(digits[1..end].iter().map(|&d| char::from(d)));
    }
    out.push_str("e+");
    out.push(char::from(b'0' + (exp / 10) as u8));
    out.push(char::from(b'0' + (exp % 10) as u8));
}

/// Any other finite, non-zero `x`, from the shortest digits that `{:e}` yields.
fn push_shortest(out: &mut String, x: f64) {
    let mut buf = Buf::new();
    // Shortest round-trip digits in scientific form: `d[.ddd]e[-]N`.
    let _ = write!(buf, "{:e}", x.abs());
    let text = buf.as_str();
    let (mantissa, exp) = split_at_byte(text, b'e').unwrap_or((text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (lead, rest) = split_at_byte(mantissa, b'.').unwrap_or((mantissa, ""));
    if x < 0.0 {
        out.push('-');
    }
    if x > 0.0 && (6..16).contains(&exp) {
        // floatToGoString's rewrite of Python's fixed form with >= 7 integer digits.
        out.push_str(lead);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e+{exp:02}");
    } else if (-4..16).contains(&exp) {
        push_fixed(out, lead, rest, exp);
    } else {
        out.push_str(lead);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
}

/// The decimal digits of `n` (with its sign), without the formatting machinery: this
/// spells most values of every scrape.
fn push_integer(out: &mut String, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut m = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push('-');
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// `s` split around the first `b` (an ASCII byte), like `str::split_once` but a plain
/// byte scan: this runs once per spelled value, and the char searcher behind
/// `split_once` is not reliably inlined.
fn split_at_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|c| c == b)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// Python's fixed notation for digits `lead.rest` times `10^exp`.
fn push_fixed(out: &mut String, lead: &str, rest: &str, exp: i32) {
    if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(lead);
        out.push_str(rest);
        return;
    }
    let int_digits = exp as usize + 1;
    out.push_str(lead);
    let digits = rest.as_bytes();
    for i in 0..int_digits - 1 {
        out.push(digits.get(i).map_or('0', |&d| char::from(d)));
    }
    out.push('.');
    match rest.get(int_digits - 1..) {
        Some(frac) if !frac.is_empty() => out.push_str(frac),
        _ => out.push('0'),
    }
}

/// The spelling of `x` as a new string.
///
/// ```
/// use multiproc_exporter::render::float::go;
/// assert_eq!(go(1e6), "1e+06");
/// assert_eq!(go(1234567.0), "1.234567e+06");
/// assert_eq!(go(-1234567.0), "-1234567.0");
/// assert_eq!(go(0.00001), "1e-05");
/// assert_eq!(go(f64::INFINITY), "+Inf");
/// ```
pub fn go(x: f64) -> String {
    let mut s = String::new();
    push_go(&mut s, x);
    s
}

/// A stack buffer for one formatted number (`{:e}` of an f64 is at most 24 bytes).
struct Buf {
    bytes: [u8; 40],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            bytes: [0; 40],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_prometheus_client_0_26() {
        // Each pair was printed by prometheus_client.utils.floatToGoString (0.26.0).
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
        for &(x, want) in cases {
            assert_eq!(go(x), want, "spelling of {x:e}");
        }
    }

    proptest! {
        #[test]
        fn integers_spell_as_their_shortest_digits(n in 1_000_000u64..(1 << 53), zeros in 0u32..6) {
            let x = ((n / 10u64.pow(zeros)) * 10u64.pow(zeros)).max(1_000_000) as f64;
            let (mut fast, mut general) = (String::new(), String::new());
            push_go(&mut fast, x);
            push_shortest(&mut general, x);
            prop_assert_eq!(fast, general);
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
    }
}
