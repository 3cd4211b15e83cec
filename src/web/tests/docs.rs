//! docs/configuration.md documents every key the schema knows, and no other (as
//! tests/it/docs.rs checks the flags against `--help`).

use crate::web::schema::{self, Raw, RawHttp, RawRateLimit, RawTls};
use serde::Deserialize;
use serde::de::{self, Visitor};
use std::collections::BTreeSet;

/// Records the field names a `Deserialize` type asks for: the schema's own list of keys.
struct Introspect<'a>(&'a mut Vec<&'static str>);

impl<'de> de::Deserializer<'de> for Introspect<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.extend_from_slice(fields);
        Err(de::Error::custom("recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields<T: Deserialize<'static>>() -> Vec<&'static str> {
    let mut out = Vec::new();
    let _ = T::deserialize(Introspect(&mut out));
    out
}

/// Every key the schema knows, dotted: the sections, their keys, and the headers.
fn schema_keys() -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = fields::<Raw>().into_iter().map(str::to_owned).collect();
    for (section, names) in [
        ("tls_server_config", fields::<RawTls>()),
        ("http_server_config", fields::<RawHttp>()),
        ("rate_limit", fields::<RawRateLimit>()),
    ] {
        assert!(keys.contains(section), "{section}");
        keys.extend(names.into_iter().map(|n| format!("{section}.{n}")));
    }
    keys.extend(
        schema::HEADERS
            .iter()
            .map(|(h, _)| format!("http_server_config.headers.{h}")),
    );
    keys
}

/// The keys in the first column of the web configuration table of
/// docs/configuration.md.
fn documented_keys() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let section = doc
        .split("## Web configuration (`--web.config.file`)")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a web configuration section in docs/configuration.md");
    section
        .lines()
        .filter_map(|l| {
            let cell = l.split('|').nth(1)?.trim();
            Some(cell.strip_prefix('`')?.strip_suffix('`')?.to_owned())
        })
        .collect()
}

/// docs/configuration.md documents every key the schema knows, and no other (as
/// tests/it/docs.rs checks the flags against `--help`).
#[test]
fn the_docs_table_lists_every_key() {
    let known = schema_keys();
    assert!(known.len() >= 25, "{known:?}");
    assert!(known.contains("tls_server_config.client_allowed_sans"));
    let documented = documented_keys();
    let undocumented: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from docs/configuration.md: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/configuration.md lists keys the schema does not know: {unknown:?}"
    );
}
