//! Number spelling identical to prometheus_client 0.26.0's `floatToGoString`.
//!
//! That function prints Python's `repr` (shortest round-trip digits, exact decimal ties
//! broken to even; fixed notation for exponents -4..=15, always with a `.`; otherwise
//! `d.ddde±XX` with at least two exponent digits), except that positive numbers with 7 to
//! 16 integer digits switch to Go's exponent form (`1e+06`, `1.234567e+06`); negatives
//! keep Python's form (`-1234567.0`).
//!
//! The digits come from crates and the spelling is ours: `zmij` (Schubfach; the shortest
//! digits, with ties to even like `repr`; Rust's own `{:e}` breaks some 16-17 digit ties
//! the other way) for non-integral values, and `itoa` for integral ones below 1e16, whose
//! shortest digits are their own. Where zmij's text is already repr's (fixed notation
//! without Go's form) it goes out as it is; anywhere else a crate's text is read back
//! into `Digits`, and `Digits::spell` is the one place that lays digits out.

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
    } else if x.fract() == 0.0 && x.abs() < INTEGRAL {
        push_integral(out, x as i64);
    } else {
        push_shortest(out, x);
    }
}

/// Below 1e16 an integral double has at most 16 digits and its neighbours are at most 2
/// away (ulp 1 below 2^53, 2 above), so no shorter decimal rounds to it unless that is
/// its own digits without trailing zeros: its shortest digits are its integer digits.
const INTEGRAL: f64 = 1e16;

/// An integral `n` with `|n| < 1e16`: digits and `.0` (most counters, on the hottest
/// path of a scrape), or Go's exponent form for positives from 1e6.
fn push_integral(out: &mut String, n: i64) {
    let mut buf = itoa::Buffer::new();
    let text = buf.format(n);
    if n < 1_000_000 {
        out.push_str(text);
        out.push_str(".0");
    } else {
        push_text(out, false, text);
    }
}

/// Any other finite, non-zero `x`, from zmij's shortest digits.
fn push_shortest(out: &mut String, x: f64) {
    let mut buf = zmij::Buffer::new();
    let abs = x.abs();
    if (1e-4..1e16).contains(&abs) && x < 1e6 {
        // Exponents -4..=15 without Go's form (no double below 0.0001, 1e6 or 1e16 has
        // shortest digits at or above it, 1e6 and 1e16 being doubles themselves and
        // 0.0001's double above 1e-4): zmij's fixed notation (-5..=15) is repr's
        // here, so its text goes out as it is (most sums and gauges).
        out.push_str(buf.format_finite(x));
    } else {
        push_text(out, x < 0.0, buf.format_finite(abs));
    }
}

/// Lays out the digits of `text` (a crate's spelling of a positive number), after a `-`
/// if `negative`. Should a crate ever print a form [`Digits::parse`] does not know, its
/// own text (still a number that round-trips) beats a panic or an empty value.
fn push_text(out: &mut String, negative: bool, text: &str) {
    if negative {
        out.push('-');
    }
    match Digits::parse(text) {
        Some(d) => {
            let mut line = Line::default();
            d.spell(!negative, &mut line);
            out.push_str(line.as_str());
        }
        None => out.push_str(text),
    }
}

/// The most significant digits a positive number may bring: 17 from zmij (an f64's
/// shortest round-trip digits), 16 from `itoa` below 1e16.
const MAX_DIGITS: usize = 17;

/// A positive decimal `d.ddd × 10^exp`: its significant digits (ASCII, no leading or
/// trailing zeros) and the exponent of the first one.
#[derive(Debug, PartialEq)]
struct Digits {
    bytes: [u8; MAX_DIGITS],
    len: usize,
    exp: i32,
}

impl Digits {
    /// Reads `123.45`, `0.00123`, `1e16`, `1.5e-7`, `1.5E+300` or `1234`: any way a crate
    /// spells a positive number. `None` for anything else, or more than [`MAX_DIGITS`]
    /// significant digits.
    fn parse(text: &str) -> Option<Digits> {
        let (mantissa, exp) = match text.bytes().position(|b| b == b'e' || b == b'E') {
            Some(i) => (text.get(..i)?, text.get(i + 1..)?.parse::<i32>().ok()?),
            None => (text, 0),
        };
        let (int, frac) = match mantissa.bytes().position(|b| b == b'.') {
            Some(i) => (mantissa.get(..i)?, mantissa.get(i + 1..)?),
            None => (mantissa, ""),
        };
        let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !(is_digits(int) && is_digits(frac)) {
            return None;
        }
        // Leading zeros move the exponent of the first significant digit; trailing
        // zeros go (those of the integer part only when the fraction has none left).
        let (int, frac, first) = match int.trim_start_matches('0') {
            "" => {
                let rest = frac.trim_start_matches('0');
                ("", rest, -1 - (frac.len() - rest.len()) as i32)
            }
            int => (int, frac, int.len() as i32 - 1),
        };
        let frac = frac.trim_end_matches('0');
        let int = if frac.is_empty() {
            int.trim_end_matches('0')
        } else {
            int
        };
        let mut d = Digits {
            bytes: [0; MAX_DIGITS],
            len: int.len() + frac.len(),
            exp: exp.checked_add(first)?,
        };
        d.bytes
            .get_mut(..int.len())?
            .copy_from_slice(int.as_bytes());
        d.bytes
            .get_mut(int.len()..d.len)?
            .copy_from_slice(frac.as_bytes());
        (d.len > 0).then_some(d)
    }

    /// Python's `repr` of this number (its sign is the caller's), with floatToGoString's
    /// exponent form if `positive` and of 7 to 16 integer digits.
    fn spell(&self, positive: bool, line: &mut Line) {
        let go_exponent = positive && (6..16).contains(&self.exp);
        if !go_exponent && (-4..16).contains(&self.exp) {
            self.spell_fixed(line);
            return;
        }
        line.put(self.digits(0..1));
        if self.len > 1 {
            line.put(b".");
            line.put(self.digits(1..self.len));
        }
        line.put(if self.exp < 0 { b"e-" } else { b"e+" });
        let exp = self.exp.unsigned_abs();
        if exp < 10 {
            line.put(b"0");
        }
        line.put(itoa::Buffer::new().format(exp).as_bytes());
    }

    /// Python's fixed notation: `0.000ddd`, or the integer digits (padded with zeros),
    /// `.` and the fraction (`0` when there is none).
    fn spell_fixed(&self, line: &mut Line) {
        if self.exp < 0 {
            line.put(b"0.");
            for _ in 1..self.exp.unsigned_abs() {
                line.put(b"0");
            }
            line.put(self.digits(0..self.len));
            return;
        }
        let int_digits = self.exp as usize + 1;
        if self.len <= int_digits {
            line.put(self.digits(0..self.len));
            for _ in self.len..int_digits {
                line.put(b"0");
            }
            line.put(b".0");
        } else {
            line.put(self.digits(0..int_digits));
            line.put(b".");
            line.put(self.digits(int_digits..self.len));
        }
    }

    /// The digits in `range` (empty when out of range).
    fn digits(&self, range: std::ops::Range<usize>) -> &[u8] {
        self.bytes.get(range).unwrap_or_default()
    }
}

/// One spelled number, assembled on the stack so it reaches the output with one UTF-8
/// check. 32 bytes hold any spelling of [`Digits`]: at most 17 digits, a point, `e-`
/// and 10 exponent digits, or 16 integer digits and a fraction in fixed notation.
#[derive(Default)]
struct Line {
    bytes: [u8; 32],
    len: usize,
}

impl Line {
    /// Appends ASCII `s` (nothing past the 32 bytes, which no spelling reaches).
    fn put(&mut self, s: &[u8]) {
        let end = self.len + s.len();
        if let Some(dst) = self.bytes.get_mut(self.len..end) {
            dst.copy_from_slice(s);
            self.len = end;
        }
    }

    /// The text so far (only ASCII is ever put, so always all of it).
    fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..self.len).unwrap_or_default();
        std::str::from_utf8(bytes).unwrap_or("")
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
/// assert_eq!(go(201409170638417.125), "2.0140917063841712e+14");
/// assert_eq!(go(f64::INFINITY), "+Inf");
/// ```
pub fn go(x: f64) -> String {
    let mut s = String::new();
    push_go(&mut s, x);
    s
}

#[cfg(test)]
mod tests;
