//! Criterion benches of the pipeline stages over generated directories.
//!
//! `cargo bench --bench pipeline` runs scales S and M; set `MPE_BENCH_L=1` to add L
//! (the L of DESIGN section 6: 64 writers, 16 of them dead, 752 files, 628,000 entries;
//! generating it takes a few seconds; the shape is `benches/shape.py`'s). The `spell`
//! group spells 88,512 values (the size of the L output) of three kinds.

mod support;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use multiproc_exporter::collect::Collector;
use multiproc_exporter::parse::{FileIndex, KeyTable};
use multiproc_exporter::read;
use multiproc_exporter::render::{self, Format};
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

criterion_group!(benches, pipeline, spelling);
criterion_main!(benches);
