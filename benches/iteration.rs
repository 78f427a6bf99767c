//! One ActiveFT iteration, phase by phase, on a seeded synthetic pool.
//!
//! `cargo bench --bench iteration`; CI only builds it (`cargo bench --no-run`).
//! Shapes: 50,000 x 384 with budget 500 (the reference's 82.5 s run).

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use activeft::select::activeft::assign;
use activeft::select::activeft::loss::{self, Batch, Points};

/// Clustered unit rows, like real embeddings (see examples/synth.rs).
fn pool(n: usize, dim: usize, clusters: usize, seed: u64) -> Array2<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((clusters, dim), |_| rng.random_range(-1.0f32..1.0));
    let mut rows = Array2::from_shape_fn((n, dim), |(_, _)| rng.random_range(-0.6f32..0.6));
    for mut row in rows.rows_mut() {
        row += &centres.row(rng.random_range(0..clusters));
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    rows
}

fn iteration(c: &mut Criterion) {
    let (n, dim, k) = (50_000, 384, 500);
    let features = pool(n, dim, 100, 1);
    let raw = features.slice(ndarray::s![..k, ..]).mapv(f64::from);
    let points = Points::new(&raw);
    let batch = Batch::All(n);
    let assignment = assign::dense(features.view(), &batch, points.unit32.view());
    let term = loss::point_term(points.unit32.view(), 0.07);

    let mut group = c.benchmark_group("iteration_50000x384_k500");
    group.sample_size(10);
    group.bench_function("assign_dense", |b| b.iter(|| assign::dense(features.view(), &batch, points.unit32.view())));
    let mut pruned = assign::Pruned::new(n, k, dim);
    pruned.assign(features.view(), &batch, points.unit32.view());
    // Points that did not move: every sample only rescores its candidates.
    group.bench_function("assign_pruned_steady", |b| {
        b.iter(|| pruned.assign(features.view(), &batch, points.unit32.view()))
    });
    group.bench_function("point_term", |b| b.iter(|| loss::point_term(points.unit32.view(), 0.07)));
    group.bench_function("loss_and_gradient", |b| {
        b.iter(|| loss::loss_and_gradient(features.view(), &batch, &assignment, &term, &points, 0.07, 1.0))
    });
    group.finish();
}

criterion_group!(benches, iteration);
criterion_main!(benches);
