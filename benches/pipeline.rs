//! Criterion benches of the pipeline stages over generated directories.
//!
//! `cargo bench --bench pipeline` runs scales S and M; set `MPE_BENCH_L=1` to add L
//! (the L of DESIGN section 6: 64 writers, 16 of them dead, 752 files, 628,000 entries;
//! generating it takes a few seconds; the shape is `benches/shape.py`'s). The `spell`
//! group spells 88,512 values (the size of the L output) of three kinds. The `gzip_*`
//! groups compress the text body of the largest scale run (L with `MPE_BENCH_L=1`, its
//! 7.7 MB; else M) at every level, on one thread and as one member in two halves on two
//! threads, and prefixes of it on both sides of the two-thread threshold; the compressed
//! sizes are printed to stderr (the table in docs/benchmarks.md). `MPE_BENCH_GZIP_DIR=DIR`
//! makes them compress the text of `DIR` instead (such as the L that `benches/shape.py`
//! writes with real prometheus_client workers).

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiproc_exporter::collect::Collector;
use multiproc_exporter::parse::{FileIndex, KeyTable};
use multiproc_exporter::read;
use multiproc_exporter::render::{self, Format};
use multiproc_exporter::serve::gzip::{self, Threads};
use std::collections::BTreeSet;
use std::hint::black_box;
use support::{L, M, S, Scale};

fn scales() -> Vec<Scale> {
    let mut v = vec![S, M];
    if std::env::var_os("MPE_BENCH_L").is_some() {
        v.push(L);
    }
    v
}

fn pipeline(c: &mut Criterion) {
    for scale in scales() {
        let tmp = tempfile::tempdir().unwrap();
        support::generate(tmp.path(), scale);
        let entries = Collector::new(tmp.path())
            .collect(&BTreeSet::new())
            .unwrap()
            .entries as u64;

        let mut group = c.benchmark_group(format!("scale_{}", scale.name));
        group.throughput(Throughput::Elements(entries));
        if scale.name == "L" {
            group.sample_size(10);
        }
        group.bench_function("collect_first", |b| {
            b.iter(|| {
                black_box(
                    Collector::new(tmp.path())
                        .collect(&BTreeSet::new())
                        .unwrap()
                        .families
                        .len(),
                )
            })
        });
        let mut warm = Collector::new(tmp.path());
        warm.collect(&BTreeSet::new()).unwrap();
        group.bench_function("collect_steady", |b| {
            b.iter(|| black_box(warm.collect(&BTreeSet::new()).unwrap().families.len()))
        });
        let families = warm.collect(&BTreeSet::new()).unwrap().families;
        for (name, format) in [
            ("text", Format::Text004),
            ("openmetrics", Format::OPENMETRICS),
        ] {
            group.bench_with_input(BenchmarkId::new("render", name), &format, |b, &format| {
                let mut out = String::new();
                b.iter(|| {
                    out.clear();
                    render::render(&families, format, &mut out);
                    black_box(out.len())
                })
            });
        }
        let dir = multiproc_exporter::dir::Dir::open(tmp.path()).unwrap();
        let snap = read::read_file(&dir, "histogram_10000.db", u64::MAX).unwrap();
        group.bench_function("index_one_histogram_file", |b| {
            b.iter(|| {
                let mut keys = KeyTable::default();
                let mut index = FileIndex::new();
                black_box(index.update(&snap.bytes, snap.used, snap.size, &mut keys));
                black_box(index.entries.len())
            })
        });
        group.finish();
    }
}

/// Number spelling alone: 88,512 values (the L output's sample count) of each kind, so
/// the cost per scrape reads off directly and the general path is measured apart from
/// the integral fast path.
fn spelling(c: &mut Criterion) {
    let mut group = c.benchmark_group("spell");
    for (name, values) in [
        (
            "counts",
            support::spell_values(support::Spell::Counts, 88_512),
        ),
        (
            "measured",
            support::spell_values(support::Spell::Measured, 88_512),
        ),
        ("bits", support::spell_values(support::Spell::Bits, 88_512)),
    ] {
        group.throughput(Throughput::Elements(values.len() as u64));
        group.bench_with_input(BenchmarkId::new("push_go", name), &values, |b, values| {
            let mut out = String::new();
            b.iter(|| {
                out.clear();
                for &x in values {
                    render::float::push_go(&mut out, x);
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// gzip of the largest scale's text body (`serve::gzip`): every level on one thread and
/// on two, then one and two threads on prefixes around the threshold at the level served.
fn gzipping(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (name, dir) = match std::env::var_os("MPE_BENCH_GZIP_DIR") {
        Some(dir) => ("dir", std::path::PathBuf::from(dir)),
        None => {
            let scale = *scales().last().expect("a scale");
            support::generate(tmp.path(), scale);
            (scale.name, tmp.path().to_owned())
        }
    };
    let families = Collector::new(&dir)
        .collect(&BTreeSet::new())
        .unwrap()
        .families;
    let mut text = String::new();
    render::render(&families, Format::Text004, &mut text);
    let text = text.into_bytes();
    let threads = [("one_thread", Threads::One), ("two_threads", Threads::Two)];

    let mut group = c.benchmark_group(format!("gzip_{name}"));
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    for level in 1..=9 {
        for (id, threads) in threads {
            let level = flate2::Compression::new(level);
            let size = gzip::gzip_with(&text, level, threads).unwrap().len();
            eprintln!(
                "gzip_{name}: level {}, {threads:?}: {size} of {} bytes ({:.2}%)",
                level.level(),
                text.len(),
                100.0 * size as f64 / text.len() as f64
            );
            group.bench_with_input(BenchmarkId::new(id, level.level()), &level, |b, &l| {
                b.iter(|| black_box(gzip::gzip_with(&text, l, threads).unwrap().len()))
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group(format!("gzip_threshold_{name}"));
    let level = flate2::Compression::new(gzip::LEVEL);
    for kib in [256, 1024, 4096] {
        let part = &text[..text.len().min(kib * 1024)];
        group.throughput(Throughput::Bytes(part.len() as u64));
        for (id, threads) in threads {
            group.bench_with_input(BenchmarkId::new(id, kib), &part, |b, part| {
                b.iter(|| black_box(gzip::gzip_with(part, level, threads).unwrap().len()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pipeline, spelling, gzipping);
criterion_main!(benches);
