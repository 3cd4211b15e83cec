//! `rate_limit`: exporter-toolkit's token bucket over all requests.
//!
//! exporter-toolkit builds one `golang.org/x/time/rate` limiter for the whole server
//! (`rate.NewLimiter(rate.Every(interval), burst)`) and answers `429 Too Many Requests`
//! to a request that finds no token, before authentication. The bucket starts full,
//! holds at most `burst` tokens and gains one per `interval`; an interval of 0 turns it
//! off, and a burst of 0 refuses every request (Go's semantics, kept, with a warning).
//! Whether health checks are counted is the server's choice (issue 12 wiring).
//!
//! `interval` is a Go duration (`1s`, `1m30s`, `250ms`) or, as yaml.v2 reads an integer
//! into a `time.Duration`, a count of nanoseconds (warned about: `interval: 1` is 1 ns).
//!
//! The bucket counts credit in nanoseconds, in integers: no float drift, and `allow` is
//! one short lock.

use super::Problem;
use super::Warning;
use super::error::Fault;
use super::schema::{GoDuration, RawRateLimit};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Settings of the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Time to earn one token.
    pub interval: Duration,
    /// Most tokens held (requests in a burst).
    pub burst: u32,
}

impl RateLimit {
    /// The settings of a `rate_limit` section; `None` when the interval is 0 (off).
    ///
    /// # Errors
    /// `rate_limit.interval` or `rate_limit.burst` and why.
    pub(crate) fn from_raw(
        raw: &RawRateLimit,
        warnings: &mut Vec<Warning>,
    ) -> Result<Option<RateLimit>, Fault> {
        let fault = |key: &str, m: String| (key.to_owned(), Problem::Refused(m));
        let nanos = match &raw.interval {
            None => 0,
            Some(GoDuration::Nanos(n)) => {
                if *n != 0 {
                    warnings.push(Warning::new(
                        "rate_limit.interval",
                        format!(
                            "an integer counts nanoseconds ({n} ns), as in exporter-toolkit; \
                             write 1s for a second"
                        ),
                    ));
                }
                i128::from(*n)
            }
            Some(GoDuration::Text(s)) => {
                parse_go_duration(s).map_err(|m| fault("rate_limit.interval", m))?
            }
        };
        if nanos < 0 {
            return Err(fault(
                "rate_limit.interval",
                "is negative; 0 turns the limit off".into(),
            ));
        }
        let burst = raw.burst.unwrap_or(0);
        let burst = u32::try_from(burst).map_err(|_| {
            fault(
                "rate_limit.burst",
                format!("{burst} is not between 0 and {}", u32::MAX),
            )
        })?;
        if nanos == 0 {
            return Ok(None);
        }
        if burst == 0 {
            warnings.push(Warning::new(
                "rate_limit.burst",
                "is 0: every request is refused with 429, as exporter-toolkit does",
            ));
        }
        let interval = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Ok(Some(RateLimit { interval, burst }))
    }
}

/// The shared bucket.
#[derive(Debug)]
pub struct TokenBucket {
    settings: RateLimit,
    /// Credit in nanoseconds (one token is `interval` of it) and when it was counted.
    state: Mutex<(u128, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(settings: RateLimit) -> TokenBucket {
        TokenBucket {
            settings,
            state: Mutex::new((Self::capacity(settings), Instant::now())),
        }
    }

    fn capacity(s: RateLimit) -> u128 {
        s.interval.as_nanos() * u128::from(s.burst)
    }

    /// Its settings.
    pub fn settings(&self) -> RateLimit {
        self.settings
    }

    /// Takes a token if there is one: whether the request may go on.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    /// [`allow`](Self::allow) at a given time (tests); a time before the last one
    /// earns nothing.
    pub fn allow_at(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (credit, last) = *state;
        let earned = now.saturating_duration_since(last).as_nanos();
        let credit = credit
            .saturating_add(earned)
            .min(Self::capacity(self.settings));
        let cost = self.settings.interval.as_nanos();
        let (credit, ok) = if credit >= cost {
            (credit - cost, true)
        } else {
            (credit, false)
        };
        *state = (credit, now.max(last));
        ok
    }
}

/// Parses a Go duration (`time.ParseDuration`): an optional sign, then one or more
/// decimal numbers each with a unit of `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`;
/// `0` alone needs no unit. Returns nanoseconds.
///
/// # Errors
/// A message naming the value.
pub fn parse_go_duration(text: &str) -> Result<i128, String> {
    let bad = || format!("{text:?} is not a Go duration like 1s, 500ms or 1m30s");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(bad());
        }
        let int: i128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut value = int.checked_mul(per).ok_or_else(bad)?;
        let mut scale = per;
        for d in frac.bytes().take(18) {
            scale /= 10;
            value += i128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(bad)?;
        if total > i128::from(i64::MAX) {
            return Err(bad());
        }
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

#[cfg(test)]
mod tests;
