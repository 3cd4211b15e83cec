//! gzip of a response body: always one gzip member, deflated in two halves on two threads
//! when the body is large.
//!
//! A scrape with `Accept-Encoding: gzip` waits for its pass's body to be compressed: at
//! the L of DESIGN section 6 (7.7 MB of text) one deflate stream at level 1 takes 7-11 ms
//! of the scrape (issue 11, target 2). Deflate is sequential, but a deflate stream may be cut into pieces that are
//! compressed independently and laid end to end: a piece that ends with a *sync flush*
//! (an empty stored block, which leaves the stream on a byte boundary) and no final block
//! can be followed by the blocks of the next piece. So a large body is split at a line
//! near its middle; the second half is deflated on the scrape's helper thread
//! ([`crate::parallel::join`]) while the calling thread deflates the first, and the
//! result is **one** member:
//!
//! ```text
//! 10-byte header | deflate(half 1), sync flush | deflate(half 2), final block | CRC32 | ISIZE
//! ```
//!
//! with the CRC32 of the whole text combined from the halves' CRCs
//! ([`crc32fast::Hasher::combine`]) and ISIZE its length mod 2^32 (RFC 1952). Two
//! concatenated members would be simpler and are valid gzip, but decoders that stop after
//! the first member exist (curl's silently returns half the body), so they are not an
//! option. The second half starts without the first's last 32 KiB as history, which
//! costs 171 bytes of the 665 KB gzip body of the L at level 1 (docs/benchmarks.md).
//!
//! The level ([`LEVEL`]) and the threshold for two threads ([`TWO_THREADS_FROM`]) were
//! chosen by measurement: docs/benchmarks.md, "gzip, one member on two threads".
//!
//! Policy: any input is compressed; nothing here panics. A failure of the deflate library
//! (which cannot happen with output space reserved, but is a `Result` in its API) is a
//! [`GzipError`], and the scrape answers 500 rather than a truncated body.

use crate::parallel;
use flate2::{Compress, CompressError, Compression, FlushCompress, Status};
use thiserror::Error;

/// The deflate level of every gzip body: 1, the fastest.
///
/// Measured on the L body (7.7 MB, docs/benchmarks.md): level 1 leaves 8.7% of the text
/// in 6-10 ms on one thread; level 2 leaves 6.5% for about 1.5x the time, and no level
/// gets below 5.1% (levels 7-9), for 10-60x the time. Prometheus scrapes every 15-60 s
/// and the body crosses a pod's network, not the internet: the ~170 KB that level 2
/// would save per scrape matter less than the milliseconds of CPU it adds to every
/// scrape, which the scrape's latency waits for and a pod's CPU limit counts.
pub const LEVEL: u32 = 1;

/// Bodies of at least this many bytes are deflated on two threads (when the process may
/// use two cores: [`parallel::threads`], one under a CPU limit of one core).
///
/// Below it one thread is cheaper: a second thread costs its start and join and a second
/// deflate state to allocate and clear (measured: 256 KiB take 0.25 ms on one thread and
/// 0.4 on two), while level 1 deflates about 1 MiB in 0.7-0.9 ms, so the half saved on a
/// smaller body is not worth a thread. Two threads do not save CPU, they spend it at
/// twice the rate: under a pod CPU limit (CFS quota, issue 11 target 7) the pass uses up
/// its quota in half the wall time, and a tight limit throttles it back towards the
/// one-thread time (a limit of one core gets one thread: [`parallel::threads`]); on a
/// busy node the second thread may wait for a core, which is why the gain measured on
/// the shared benchmark machine is smaller than the halving.
pub const TWO_THREADS_FROM: usize = 1 << 20;

/// The split point is the first line end at most this far after the middle (or the
/// middle itself if there is none): bounded, so a body of one huge line is not scanned.
const LINE_SEARCH: usize = 64 * 1024;

/// Output space added before a deflate call when less than this is left.
const MIN_SPARE: usize = 64 * 1024;

/// How many threads deflate a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One deflate stream on the calling thread.
    One,
    /// Two halves, the second on a scoped helper thread (on the calling thread after the
    /// first if no thread can be started: [`parallel::join`]).
    Two,
}

/// Why a body could not be compressed.
#[derive(Debug, Error)]
pub enum GzipError {
    /// The deflate library reported an error.
    #[error("deflate failed: {0}")]
    Deflate(#[from] CompressError),
    /// Deflate took no input and wrote no output although output space was free.
    #[error("deflate made no progress")]
    Stalled,
}

/// `text` as one gzip member at [`LEVEL`], on two threads from [`TWO_THREADS_FROM`] bytes
/// if the process may use two cores.
///
/// # Errors
/// When the deflate library fails ([`GzipError`]).
pub fn gzip(text: &[u8]) -> Result<Vec<u8>, GzipError> {
    let threads = if text.len() >= TWO_THREADS_FROM && parallel::threads() >= 2 {
        Threads::Two
    } else {
        Threads::One
    };
    gzip_with(text, Compression::new(LEVEL), threads)
}

/// `text` as one gzip member at `level`, deflated on `threads` whatever its size (for the
/// benchmarks and tests; the server calls [`gzip`]).
///
/// # Errors
/// When the deflate library fails ([`GzipError`]).
pub fn gzip_with(text: &[u8], level: Compression, threads: Threads) -> Result<Vec<u8>, GzipError> {
    let mut out = Vec::with_capacity(text.len() / 8 + MIN_SPARE);
    out.extend_from_slice(&header(level));
    let crc = match threads {
        Threads::One => {
            deflate(text, level, FlushCompress::Finish, &mut out)?;
            crc32fast::hash(text)
        }
        Threads::Two => two_halves(text, level, &mut out)?,
    };
    out.extend_from_slice(&crc.to_le_bytes());
    // ISIZE is the length mod 2^32 by definition: the truncation is the format's.
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    Ok(out)
}

/// The 10-byte member header: deflate, no flags, no mtime (a body has no file time), XFL
/// as flate2's `GzEncoder` writes it for the level, OS 255 (unknown): the header bytes
/// flate2's encoder wrote before this module.
fn header(level: Compression) -> [u8; 10] {
    let xfl = match level.level() {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// Deflates the halves of `text` on two threads, appends both to `out`, and returns the
/// CRC32 of the whole text.
fn two_halves(text: &[u8], level: Compression, out: &mut Vec<u8>) -> Result<u32, GzipError> {
    let (first, second) = text.split_at(split_point(text));
    let (head, tail) = parallel::join(
        || deflate(first, level, FlushCompress::Sync, out),
        || last_half(second, level),
    );
    head?;
    let (tail, tail_crc) = tail?;
    out.extend_from_slice(&tail);
    let mut crc = crc32fast::Hasher::new();
    crc.update(first);
    crc.combine(&tail_crc);
    Ok(crc.finalize())
}

/// The second half: deflated to the final block, with its CRC state (for combining).
fn last_half(half: &[u8], level: Compression) -> Result<(Vec<u8>, crc32fast::Hasher), GzipError> {
    let mut out = Vec::with_capacity(half.len() / 8 + MIN_SPARE);
    deflate(half, level, FlushCompress::Finish, &mut out)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(half);
    Ok((out, crc))
}

/// Where `text` is cut in two: just after the first line end in [`LINE_SEARCH`] bytes
/// from the middle, or the middle. Any cut gives a correct stream; at a line end the
/// second half starts with a whole sample line, not the tail of one it could not match
/// against the first half's history.
fn split_point(text: &[u8]) -> usize {
    let mid = text.len() / 2;
    let window = &text[mid..text.len().min(mid + LINE_SEARCH)];
    window
        .iter()
        .position(|&b| b == b'\n')
        .map_or(mid, |i| mid + i + 1)
}

/// Appends the raw deflate of `input` to `out`, ending it with `flush`: `Finish` writes
/// the final block, `Sync` leaves the stream open on a byte boundary.
fn deflate(
    input: &[u8],
    level: Compression,
    flush: FlushCompress,
    out: &mut Vec<u8>,
) -> Result<(), GzipError> {
    let mut c = Compress::new(level, false);
    let mut rest = input;
    loop {
        if out.capacity() - out.len() < MIN_SPARE {
            out.reserve(rest.len() / 8 + MIN_SPARE);
        }
        let (read, written) = (c.total_in(), c.total_out());
        let status = c.compress_vec(rest, out, flush)?;
        let consumed = usize::try_from(c.total_in() - read).unwrap_or(usize::MAX);
        rest = rest.get(consumed..).unwrap_or_default();
        // zlib's contract: a flush is complete when it returns with output space left.
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            _ => rest.is_empty() && out.len() < out.capacity(),
        };
        if done {
            return Ok(());
        }
        if c.total_in() == read && c.total_out() == written {
            return Err(GzipError::Stalled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read;

    /// The member decoded by flate2's single-member decoder and by its multi-member one,
    /// which must agree: a second member or trailing data would make them differ.
    fn decoded(gz: &[u8]) -> Vec<u8> {
        let mut one = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut one)
            .expect("valid gzip");
        let mut multi = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut multi)
            .expect("valid gzip");
        assert_eq!(one, multi, "more than one member");
        one
    }

    /// Prometheus-like text of about `n` bytes.
    fn lines(n: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut i = 0u64;
        while s.len() < n {
            s.push_str(&format!(
                "http_requests_total{{path=\"/api/{}\",code=\"{}\"}} {}\n",
                i % 97,
                200 + i % 5,
                i.wrapping_mul(2_654_435_761) % 100_000
            ));
            i += 1;
        }
        s.into_bytes()
    }

    #[test]
    fn test_issue_11_two_threads_make_one_member() {
        let text = lines(3 << 20);
        let gz = gzip_with(&text, Compression::fast(), Threads::Two).unwrap();
        assert_eq!(decoded(&gz), text);
        // The trailer: CRC32 and length of the whole text.
        let n = gz.len();
        assert_eq!(gz[n - 8..n - 4], crc32fast::hash(&text).to_le_bytes());
        assert_eq!(gz[n - 4..], (text.len() as u32).to_le_bytes());
    }

    #[test]
    fn test_issue_11_gzip_picks_threads_by_size_and_matches_one_thread_output_size() {
        for n in [0, 1, 1000, TWO_THREADS_FROM - 1, TWO_THREADS_FROM, 2 << 20] {
            let text = lines(n);
            let text = &text[..n.min(text.len())];
            let gz = gzip(text).unwrap();
            assert_eq!(decoded(&gz), text, "{n} bytes");
            let one = gzip_with(text, Compression::new(LEVEL), Threads::One).unwrap();
            if n < TWO_THREADS_FROM {
                assert_eq!(gz, one, "one thread below the threshold");
            } else {
                assert!(
                    gz.len() < one.len() + one.len() / 100,
                    "{} vs {}",
                    gz.len(),
                    one.len()
                );
            }
        }
    }

    #[test]
    fn every_level_round_trips_on_both_paths() {
        let text = lines(200_000);
        for level in 0..=9 {
            for threads in [Threads::One, Threads::Two] {
                let gz = gzip_with(&text, Compression::new(level), threads).unwrap();
                assert_eq!(decoded(&gz), text, "level {level}, {threads:?}");
            }
        }
    }

    #[test]
    fn header_matches_flate2s_encoder() {
        use std::io::Write;
        for level in [1, 6, 9] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::new(level));
            enc.write_all(b"x").unwrap();
            let theirs = enc.finish().unwrap();
            assert_eq!(
                theirs[..10],
                header(Compression::new(level)),
                "level {level}"
            );
        }
    }

    #[test]
    fn split_point_is_after_a_line_end_near_the_middle() {
        assert_eq!(split_point(b""), 0);
        assert_eq!(split_point(b"ab\ncd\nef\n"), 6);
        let one_line = vec![b'a'; 3 * LINE_SEARCH];
        assert_eq!(split_point(&one_line), one_line.len() / 2);
    }

    #[test]
    fn incompressible_input_round_trips() {
        // Stored blocks, where deflate's output exceeds its input.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..(TWO_THREADS_FROM + 12_345))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for threads in [Threads::One, Threads::Two] {
            let gz = gzip_with(&noise, Compression::new(LEVEL), threads).unwrap();
            assert_eq!(decoded(&gz), noise, "{threads:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random bodies on both sides of the threshold, random levels, both paths.
        #[test]
        fn test_issue_11_any_body_round_trips_as_one_member(
            seed in any::<u64>(),
            len in prop_oneof![0usize..4096, (TWO_THREADS_FROM - 4096)..(TWO_THREADS_FROM + 4096)],
            alphabet in 1u8..=255,
            level in 0u32..=9,
        ) {
            let mut x = seed | 1;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match (x % u64::from(alphabet)) as u8 {
                        0 => b'\n',
                        c => b' ' + c % 95,
                    }
                })
                .collect();
            let auto = gzip(&text).unwrap();
            prop_assert_eq!(decoded(&auto), text.clone());
            for threads in [Threads::One, Threads::Two] {
                let gz = gzip_with(&text, Compression::new(level), threads).unwrap();
                prop_assert_eq!(decoded(&gz), text.clone());
            }
        }
    }
}
