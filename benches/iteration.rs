//! One ActiveFT iteration, phase by phase, on a seeded synthetic pool.
//!
//! `cargo bench --bench iteration`; CI only builds it (`cargo bench --no-run`).
//! Shapes: 50,000 x 384 with budget 500 (the reference's 82.5 s run), and,
//! with `ACTIVEFT_BENCH_IMAGENET=1`, 1,281,167 x 384 with budget 12,811
//! (ImageNet-1k at 1%; needs about 3 GB and a few minutes of setup for the
//! first full scan).
//!
//! The pruned phases are measured in their steady state: the points do not
//! move between calls, so every sample only rescores its last winner. That is
//! the floor of a real iteration; `work` in a run's report says how much
//! more the real trajectory needed.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;

use activeft::internals::activeft::evaluate;
use activeft::internals::activeft::loss::{self, Points, SampleLoss};
use activeft::internals::{Batch, Engine, Mode, dense, synth};

/// Unit rows of a mixture as spread out as real embeddings (see src/synth.rs).
fn pool(n: usize, dim: usize, clusters: usize, seed: u64) -> Array2<f32> {
    let (mut rows, _) = synth::mixture(n, dim, clusters, synth::REAL_SPREAD, seed);
    for mut row in rows.rows_mut() {
        let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        row.mapv_inplace(|v| (f64::from(v) / norm) as f32);
    }
    rows
}

/// Benchmarks one iteration's phases at one shape; the dense phases only
/// where they take seconds, not minutes.
fn shape(c: &mut Criterion, n: usize, dim: usize, k: usize, with_dense: bool) {
    let mut features = pool(n, dim, (k / 5).max(1), 1);
    let original = features.clone();
    let raw = features.slice(ndarray::s![..k, ..]).mapv(f64::from);
    let points = Points::new(&raw);
    let batch = Batch::All(n);
    let term = loss::point_term(points.unit32.view(), 0.07);
    let mut engine = Engine::new(&mut features, k, Mode::Pruned).expect("the pool fits");
    engine.assign(points.unit32.view());

    let mut group = c.benchmark_group(format!("iteration_{n}x{dim}_k{k}"));
    group.sample_size(10);
    group.bench_function("point_term", |b| b.iter(|| loss::point_term(points.unit32.view(), 0.07)));
    group.bench_function("assign_pruned_steady", |b| b.iter(|| engine.assign(points.unit32.view())));
    let objective = SampleLoss::new(0.07, 1.0);
    group.bench_function("fused_step_steady", |b| b.iter(|| evaluate(&mut engine, &batch, &points, &term, objective)));
    if with_dense {
        let assignment = dense(original.view(), &batch, points.unit32.view());
        group.bench_function("assign_dense", |b| b.iter(|| dense(original.view(), &batch, points.unit32.view())));
        group.bench_function("loss_and_gradient", |b| {
            b.iter(|| loss::loss_and_gradient(original.view(), &batch, &assignment, &term, &points, 0.07, 1.0))
        });
    }
    group.finish();
}

/// The point-point term alone, at the budgets of the README's tables and
/// at ImageNet-1k's 1% (it needs no pool, so it is always measured).
fn point_term(c: &mut Criterion) {
    let mut group = c.benchmark_group("point_term_d384");
    group.sample_size(10);
    for k in [500, 1281, 12_811] {
        let points = pool(k, 384, k, 2);
        group.bench_function(format!("k{k}"), |b| b.iter(|| loss::point_term(points.view(), 0.07)));
    }
    group.finish();
}

fn iteration(c: &mut Criterion) {
    shape(c, 50_000, 384, 500, true);
    if std::env::var_os("ACTIVEFT_BENCH_IMAGENET").is_some() {
        shape(c, 1_281_167, 384, 12_811, false);
    }
}

criterion_group!(benches, point_term, iteration);
criterion_main!(benches);
