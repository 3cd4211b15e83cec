//! The checks behind the fuzz targets, as plain functions.
//!
//! Each target in `src/bin/` hands AFL++'s input to one function here, so the same
//! checks also run without the fuzzer: the tests below replay the seed corpus, and an
//! input that `fuzz/run` reports as a crash replays by piping it into the built target.
//! A failed check is a panic, which AFL++ records as a crash.
//!
//! - [`check_file`]: the input is the content of one `.db` file. It is parsed as the
//!   sidecar parses it (the read stage's cut, then [`FileIndex::update`]), whole and in
//!   two passes, and the index is checked against the bytes.
//! - [`check_key`]: the input is one key text. It is decoded, re-encoded and compared
//!   with an independent JSON parser.
//!
//! Only the crate's public API is used, so a check cannot depend on how the parser
//! works inside, only on what it promises.

use multiproc_exporter::format::{self, HEADER_LEN, OLD_VALUE_LEN, VALUE_LEN, key};
use multiproc_exporter::model::{FileProblem, Reason};
use multiproc_exporter::parse::{FileIndex, KeyTable, Le};
use multiproc_exporter::read;
use multiproc_exporter::read::DEFAULT_FILE_LIMIT;

/// What the read stage hands the parser for a file holding `file`.
struct Snapshot<'a> {
    /// `[0, min(used, size, limit))`, or what there is when the header is not whole.
    bytes: &'a [u8],
    /// The header's `used`, if the file has a whole header.
    used: Option<i32>,
    /// The file size.
    size: u64,
}

/// Cuts `file` as `read::read_open` does (with [`read::readable_len`]), minus the
/// system calls: a slice has no holes and cannot shrink while it is read.
fn snapshot(file: &[u8], limit: u64) -> Snapshot<'_> {
    let size = file.len() as u64;
    let Some(used) = format::used(file).filter(|_| file.len() >= HEADER_LEN) else {
        return Snapshot {
            bytes: file,
            used: None,
            size,
        };
    };
    let want = read::readable_len(used, size, limit).min(file.len());
    Snapshot {
        bytes: &file[..want],
        used: Some(used),
        size,
    }
}

/// An index entry by content: its key text and the offset of its value. Key ids depend
/// on the order the table first saw the keys, so indexes are compared by what the ids
/// stand for.
type Entry = (Vec<u8>, u32);

fn entries(index: &FileIndex, keys: &KeyTable) -> Vec<Entry> {
    index
        .entries
        .iter()
        .map(|e| (keys.text(e.key).to_vec(), e.value_offset))
        .collect()
}

fn problems(found: &[FileProblem]) -> Vec<(Reason, &str)> {
    found
        .iter()
        .map(|p| (p.reason, p.detail.as_str()))
        .collect()
}

/// Checks the content of one `.db` file; panics on a broken promise.
///
/// 1. Parsing never panics (no overflow either: cargo-afl builds with overflow checks).
/// 2. Every indexed entry lies within the bytes, in file order, without overlap, and is
///    what the bytes say: its length field, its key text, its value pair within the
///    bytes.
/// 3. The index holds exactly the framer's entries with a valid key, up to where the
///    framer stops (none when the file is reported as old format); a file read without a
///    problem is framed to its end.
/// 4. Writing the indexed entries back with the crate's encoder gives a file that parses
///    without a problem to the same keys and the same values.
/// 5. Two passes give the same index and the same problems as one pass over the final
///    content: a first pass over the file as its writer left it earlier (`used` where
///    one of its entries ends), or over a read cut short anywhere; then a second pass
///    as a mapped file gets it (the header and the bytes from `parsed_to` on, zeros
///    between) or as a cold one (all of it). See [`check_two_passes`].
pub fn check_file(file: &[u8]) {
    let snap = snapshot(file, DEFAULT_FILE_LIMIT);
    // One table for all passes, as the sidecar keeps one per directory.
    let mut keys = KeyTable::default();
    let mut whole = FileIndex::new();
    let found = whole.update(snap.bytes, snap.used, snap.size, &mut keys);
    check_index(&whole, &keys, snap.bytes);
    check_against_framer(&whole, &mut keys, snap.bytes, &found);
    check_rewrite(&whole, &mut keys, snap.bytes);

    let Some(_) = snap.used else { return };
    let want = (entries(&whole, &keys), problems(&found));
    let len = snap.bytes.len();
    let h = fnv1a(file);
    // A writer leaves `used` where one of its entries ends: with 16-byte values, or
    // 8-byte ones if the file is old. A read can be cut anywhere.
    let old = found.iter().any(|p| p.reason == Reason::OldFormat);
    let value_len = if old { OLD_VALUE_LEN } else { VALUE_LEN };
    let ends: Vec<usize> = format::walk(snap.bytes, HEADER_LEN, len, value_len)
        .map_while(Result::ok)
        .map(|e| e.end)
        .collect();
    let boundary = if ends.is_empty() {
        HEADER_LEN
    } else {
        ends[((h >> 32) % ends.len() as u64) as usize]
    };
    let arbitrary = HEADER_LEN + (h % (len - HEADER_LEN + 1) as u64) as usize;
    for (earlier, cut) in [
        (Earlier::Growth, boundary),
        (Earlier::ShortRead, boundary),
        (Earlier::ShortRead, arbitrary),
    ] {
        for second in [Second::Mapped, Second::Cold] {
            check_two_passes(file, &snap, cut, earlier, second, &mut keys, &want);
        }
    }
}

/// What the first of two passes saw.
#[derive(Clone, Copy, Debug)]
enum Earlier {
    /// The file as its writer left it earlier: the same bytes, with `used` at the cut.
    Growth,
    /// The file's header and size, but the bytes only up to the cut (a read cut short).
    ShortRead,
}

/// How the second pass gets its bytes (see `collect::refresh`).
#[derive(Clone, Copy, Debug)]
enum Second {
    /// A mapped file: the header and the bytes from where the index stopped, with
    /// zeros in between.
    Mapped,
    /// A file over the descriptor budget: all of it, read again.
    Cold,
}

/// Parses the first `cut` bytes as `earlier` saw them, then the whole content as `second`
/// reads it, and compares the index and the problems of that second pass with `want`,
/// those of one pass over the whole.
fn check_two_passes(
    file: &[u8],
    whole: &Snapshot<'_>,
    cut: usize,
    earlier: Earlier,
    second: Second,
    keys: &mut KeyTable,
    want: &(Vec<Entry>, Vec<(Reason, &str)>),
) {
    let mut index = FileIndex::new();
    let patched;
    let first = match earlier {
        Earlier::Growth => {
            let mut f = file.to_vec();
            format::set_used(&mut f, i32::try_from(cut).expect("a cut within used"));
            patched = f;
            snapshot(&patched, DEFAULT_FILE_LIMIT)
        }
        Earlier::ShortRead => Snapshot {
            bytes: &whole.bytes[..cut],
            used: whole.used,
            size: whole.size,
        },
    };
    index.update(first.bytes, first.used, first.size, keys);
    check_index(&index, keys, first.bytes);
    // The sidecar skips a file that reads shorter than what it indexed (`shrunk`); a
    // cut within the final bytes never is.
    assert!(index.parsed_to() <= whole.bytes.len().max(HEADER_LEN));
    let zeroed;
    let bytes = match second {
        Second::Cold => whole.bytes,
        Second::Mapped => {
            let mut b = whole.bytes.to_vec();
            let known = index.parsed_to().min(b.len());
            if known > HEADER_LEN {
                b[HEADER_LEN..known].fill(0);
            }
            zeroed = b;
            &zeroed
        }
    };
    let found = index.update(bytes, whole.used, whole.size, keys);
    check_index(&index, keys, whole.bytes);
    let got = (entries(&index, keys), problems(&found));
    assert_eq!(
        &got, want,
        "{earlier:?} cut at {cut} then a {second:?} pass differs from one pass"
    );
}

/// Promise 2 of [`check_file`]: the index describes `bytes`.
fn check_index(index: &FileIndex, keys: &KeyTable, bytes: &[u8]) {
    let parsed_to = index.parsed_to();
    assert!(
        parsed_to >= HEADER_LEN && parsed_to.is_multiple_of(8),
        "parsed_to={parsed_to}"
    );
    assert!(
        parsed_to <= bytes.len().max(HEADER_LEN),
        "parsed_to={parsed_to} past the {} bytes",
        bytes.len()
    );
    let mut prev_end = HEADER_LEN;
    for e in &index.entries {
        let value = e.value_offset as usize;
        let text = keys.text(e.key);
        let n = text.len();
        let key_end = value
            .checked_sub(format::padding(n))
            .expect("room for the padding before the value");
        let start = key_end
            .checked_sub(n + 4)
            .expect("room for the key and its length before the value");
        assert!(
            start >= prev_end,
            "entry at {start} overlaps the one ending at {prev_end}"
        );
        assert!(start.is_multiple_of(8), "entry at {start} is not aligned");
        let len_field: [u8; 4] = bytes[start..start + 4].try_into().unwrap();
        assert_eq!(
            i32::from_ne_bytes(len_field),
            i32::try_from(n).unwrap(),
            "length field at {start}"
        );
        assert_eq!(&bytes[start + 4..key_end], text, "key text at {start}");
        let end = value + VALUE_LEN;
        assert!(
            end <= bytes.len(),
            "value at {value} past the {} bytes",
            bytes.len()
        );
        assert!(format::value_at(bytes, value).is_some());
        prev_end = end;
    }
}

/// Promise 3 of [`check_file`], for one pass over all of `bytes`.
fn check_against_framer(
    index: &FileIndex,
    keys: &mut KeyTable,
    bytes: &[u8],
    found: &[FileProblem],
) {
    let got = entries(index, keys);
    if found.iter().any(|p| p.reason == Reason::OldFormat) {
        assert!(got.is_empty(), "an old-format file kept entries");
        return;
    }
    let header_ok = bytes.len() >= HEADER_LEN && format::used(bytes).is_some_and(|u| u >= 8);
    let mut framed = Vec::new();
    let mut walk = format::walk(bytes, HEADER_LEN, bytes.len(), VALUE_LEN);
    if header_ok && !bytes.starts_with(format::SQLITE_MAGIC) {
        for frame in walk.by_ref() {
            let Ok(e) = frame else { break };
            // The table decodes with `key::decode` (the key target checks that).
            if keys.intern(e.key).is_ok() {
                framed.push((e.key.to_vec(), e.value_offset as u32));
            }
        }
    }
    assert_eq!(got, framed, "the index is not the framer's valid entries");
    if found.is_empty() && header_ok {
        assert_eq!(
            index.parsed_to(),
            bytes.len(),
            "no problem, yet not framed to the end"
        );
        assert_eq!(walk.position(), bytes.len());
    }
}

/// Promise 4 of [`check_file`].
fn check_rewrite(index: &FileIndex, keys: &mut KeyTable, bytes: &[u8]) {
    let mut file = vec![0u8; HEADER_LEN];
    let mut want = Vec::new();
    for e in &index.entries {
        let (value, timestamp) = format::value_at(bytes, e.value_offset as usize).unwrap();
        let text = keys.text(e.key);
        let at = format::encode_entry(&mut file, &text, value, timestamp);
        assert!(at.is_multiple_of(8));
        want.push((text.to_vec(), value.to_bits(), timestamp.to_bits()));
    }
    let used = i32::try_from(file.len()).expect("a rewrite no larger than the file");
    format::set_used(&mut file, used);
    let mut again = FileIndex::new();
    let found = again.update(&file, format::used(&file), file.len() as u64, keys);
    assert!(found.is_empty(), "rewritten file has problems: {found:?}");
    let got: Vec<_> = again
        .entries
        .iter()
        .map(|e| {
            let (v, t) = format::value_at(&file, e.value_offset as usize).unwrap();
            (keys.text(e.key).to_vec(), v.to_bits(), t.to_bits())
        })
        .collect();
    assert_eq!(got, want, "rewritten file parses differently");
}

/// Checks one key text; panics on a broken promise.
///
/// 1. Decoding never panics.
/// 2. An error points inside the text.
/// 3. A decoded key has its labels sorted by name without repeats, re-encodes (as
///    prometheus_client would write it) to ASCII that decodes to the same key, and that
///    encoding is a fixed point.
/// 4. The decoder agrees with serde_json, an independent JSON parser, on every text that
///    serde_json reads as the current key shape (`[str, str, {str: str}, str]`), and on
///    the pre-0.16 shape `[str, str, {str: str}]`; a key the decoder reads, serde_json
///    reads the same, unless the text holds numbers or literals (in a label value that a
///    repeated name overwrites). serde_json stands in for Python's `json.loads`: on
///    these texts the two differ only in lone surrogates, which both serde_json and the
///    decoder refuse, and in `NaN`, `Infinity` and out-of-range numbers, which only
///    `json.loads` reads. Any JSON array that serde_json accepts is JSON to the decoder
///    too (only nesting deeper than the decoder's cap of 64 may be refused).
/// 5. The key table decodes exactly the keys the decoder does, with the same parts.
pub fn check_key(raw: &[u8]) {
    let decoded = key::decode(raw);
    match &decoded {
        Err(key::KeyError::Utf8 { offset }) => {
            let e = std::str::from_utf8(raw).expect_err("a Utf8 error on UTF-8");
            assert_eq!(*offset, e.valid_up_to());
        }
        Err(key::KeyError::Json { offset, .. }) => assert!(*offset <= raw.len()),
        Err(_) => {}
        Ok(k) => check_reencode(k),
    }
    check_against_serde(raw, &decoded);
    check_table(raw, &decoded);
}

/// A decoded key written again with the crate's encoder.
fn encode_again(k: &key::Key) -> String {
    let pairs: Vec<(&str, &str)> = k
        .labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    key::encode(&k.metric, &k.name, &pairs, &k.help)
}

/// Promise 3 of [`check_key`].
fn check_reencode(k: &key::Key) {
    assert!(
        k.labels.windows(2).all(|w| w[0].0 < w[1].0),
        "labels not sorted and unique: {:?}",
        k.labels
    );
    let text = encode_again(k);
    assert!(text.is_ascii(), "encode is not ASCII: {text:?}");
    let again = key::decode(text.as_bytes()).expect("an encoded key decodes");
    assert_eq!(&again, k, "decode(encode(k)) != k");
    let pairs: Vec<(&str, &str)> = again
        .labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        key::encode(&again.metric, &again.name, &pairs, &again.help),
        text,
        "encode is not a fixed point"
    );
}

/// Promise 4 of [`check_key`].
fn check_against_serde(raw: &[u8], decoded: &Result<key::Key, key::KeyError>) {
    use serde_json::Value;
    let parsed: Result<Value, _> = serde_json::from_slice(raw);
    let as_str = |v: &Value| v.as_str().map(str::to_owned);
    let as_labels = |v: &Value| -> Option<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = v
            .as_object()?
            .iter()
            .map(|(n, v)| Some((n.clone(), as_str(v)?)))
            .collect::<Option<_>>()?;
        out.sort();
        Some(out)
    };
    let shape = parsed.as_ref().ok().and_then(|v| {
        let a = v.as_array()?;
        let head = (
            as_str(a.first()?)?,
            as_str(a.get(1)?)?,
            as_labels(a.get(2)?)?,
        );
        match a.len() {
            3 => Some((head, None)),
            4 => Some((head, Some(as_str(&a[3])?))),
            _ => None,
        }
    });
    match (shape, decoded) {
        (Some(((metric, name, labels), Some(help))), Ok(k)) => {
            let want = key::Key {
                metric,
                name,
                labels,
                help,
            };
            assert_eq!(k, &want, "the decoder and serde_json read different keys");
        }
        // The decoder caps nesting (in an overwritten label value) at 64, serde_json at 128.
        (Some((_, Some(_))), Err(key::KeyError::Json { what, .. })) if *what == NESTING => {}
        (Some((_, Some(_))), Err(e)) => panic!("serde_json reads a key, the decoder says {e}"),
        (Some((_, None)), d) => assert_eq!(
            d,
            &Err(key::KeyError::OldShape),
            "a three-member key is the pre-0.16 shape"
        ),
        // A number, `NaN` or `Infinity` can only be an overwritten label value here; Python
        // reads `NaN`, `Infinity` and `1e400`, serde_json does not, so only a text of
        // strings and punctuation must be read by both.
        (None, Ok(k)) => assert!(
            !only_strings_and_punctuation(raw),
            "the decoder reads {k:?}, serde_json does not: {parsed:?}"
        ),
        (None, Err(e)) => {
            let array = parsed.as_ref().is_ok_and(Value::is_array);
            let json_error = match e {
                key::KeyError::Utf8 { .. } => true,
                key::KeyError::Json { what, .. } => *what != NESTING,
                _ => false,
            };
            assert!(
                !(array && json_error),
                "serde_json reads a JSON array, the decoder says {e}"
            );
        }
    }
}

/// The decoder's message for nesting past its cap.
const NESTING: &str = "nesting too deep";

/// Whether everything outside the string literals of `raw` is JSON punctuation or
/// whitespace (no numbers, literals or stray bytes).
fn only_strings_and_punctuation(raw: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    raw.iter().all(|&c| {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            true
        } else if c == b'"' {
            in_string = true;
            true
        } else {
            b"[]{},: \t\n\r".contains(&c)
        }
    })
}

/// Promise 5 of [`check_key`].
fn check_table(raw: &[u8], decoded: &Result<key::Key, key::KeyError>) {
    let mut table = KeyTable::default();
    let interned = table.intern(raw);
    match (decoded, interned) {
        (Ok(k), Ok(id)) => {
            assert_eq!(
                table.intern(raw),
                Ok(id),
                "a second intern gives another id"
            );
            assert_eq!(table.text(id), raw);
            let info = table.info(id);
            assert_eq!(&**table.families.get(info.family), k.metric);
            assert_eq!(&**table.names.get(info.name), k.name);
            assert_eq!(&**table.help(info.help), k.help);
            let le = k.labels.iter().find(|(n, _)| n == "le");
            assert_eq!(
                info.le == Le::Absent,
                le.is_none(),
                "le decided without regard to the labels"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, &b),
        (a, b) => panic!("decode says {a:?}, the key table {b:?}"),
    }
}

/// FNV-1a: a cheap, stable choice of cut points from the input itself, so a crash
/// replays with the same cuts.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn seeds(dir: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(dir);
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no seeds in {}", dir.display());
        out
    }

    #[test]
    fn file_seeds_pass_and_parse_as_their_writer_meant() {
        for (name, bytes) in seeds("file") {
            check_file(&bytes);
            let mut keys = KeyTable::default();
            let mut index = FileIndex::new();
            let found = index.update(&bytes, format::used(&bytes), bytes.len() as u64, &mut keys);
            if name.starts_with("old-") {
                assert_eq!(problems(&found)[0].0, Reason::OldFormat, "{name}");
            } else {
                assert!(found.is_empty(), "{name}: {found:?}");
                assert!(!index.entries.is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn key_seeds_pass_and_encode_back_to_the_same_bytes() {
        // The encoder is meant to write exactly what prometheus_client writes.
        for (name, raw) in seeds("key") {
            check_key(&raw);
            let k = key::decode(&raw).unwrap();
            let text = encode_again(&k);
            assert_eq!(text.as_bytes(), &raw[..], "{name}");
        }
    }

    #[test]
    fn odd_inputs_pass() {
        for input in [
            &b""[..],
            b"\x08\0\0\0",
            b"\x08\0\0\0\0\0\0\0",
            b"\xff\xff\xff\xff\0\0\0\0",
            b"\x10\0\0\0\0\0\0\0\x04\0\0\0",
            br#"["a", "a", {"x": 1, "x": "2"}, "h"]"#,
            br#"["a", "a", {"x": NaN, "x": 1e400, "x": "2"}, "h"]"#,
            br#"["a", "a", {"x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "x": "2"}, "h"]"#,
        ] {
            check_file(input);
            check_key(input);
        }
    }
}
