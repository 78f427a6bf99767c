//! Seeded Gaussian-mixture pools for benchmarks, examples and the
//! regression check: one generator, so every measurement uses the same
//! kind of pool.
//!
//! Real embeddings are spread out: a sample's cosine to its class mean is
//! about 0.5–0.7 (sentence embeddings, DINO features), not the 0.9 of a
//! tight mixture, and the bounds that make the engine fast fail more often
//! there. `spread` is the noise's norm relative to the (unit) class
//! centre, so the cosine to the class mean is about `1/√(1 + spread²)`:
//! 0.5 gives the easy 0.9 pools, the default 1.2 gives 0.64. Classes have
//! long-tailed sizes and dimensions uneven scales, as real ones do.

use ndarray::{Array1, Array2};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The spread that makes pools look like real embeddings.
pub const REAL_SPREAD: f64 = 1.2;
/// The spread of the easy pools measured before (cosine 0.9 to the class mean).
pub const EASY_SPREAD: f64 = 0.5;

/// A standard normal draw (Box–Muller; plenty for synthetic data).
fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// `n` samples of dimension `dim` from `classes` classes (raw rows, not
/// normalised) and each sample's class.
pub fn mixture(n: usize, dim: usize, classes: usize, spread: f64, seed: u64) -> (Array2<f32>, Array1<i64>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let scale = (dim as f64).sqrt().recip();
    let centres: Vec<f64> = (0..classes * dim).map(|_| gaussian(&mut rng) * scale).collect();
    // Uneven dimensions, normalised so the noise's expected norm is `spread`.
    let mut widths: Vec<f64> = (0..dim).map(|_| (0.5 * gaussian(&mut rng)).exp()).collect();
    let mean_square = widths.iter().map(|w| w * w).sum::<f64>() / dim as f64;
    widths.iter_mut().for_each(|w| *w *= spread * scale / mean_square.sqrt());
    // Long-tailed class sizes: class c is drawn with weight 1 / (c + 1)^0.8.
    let weights: Vec<f64> = (0..classes).map(|c| ((c + 1) as f64).powf(-0.8)).collect();
    let total: f64 = weights.iter().sum();
    let mut pool = Array2::<f32>::zeros((n, dim));
    let mut labels = Array1::<i64>::zeros(n);
    for (mut row, label) in pool.rows_mut().into_iter().zip(labels.iter_mut()) {
        let mut target = rng.random::<f64>() * total;
        let class = weights.iter().position(|&w| {
            target -= w;
            target < 0.0
        });
        let class = class.unwrap_or(classes - 1);
        *label = class as i64;
        for (j, v) in row.iter_mut().enumerate() {
            *v = (centres[class * dim + j] + widths[j] * gaussian(&mut rng)) as f32;
        }
    }
    (pool, labels)
}

/// The mean cosine of each sample to its class mean (over unit rows): how
/// spread out the pool is.
pub fn cosine_to_class_mean(pool: &Array2<f32>, labels: &Array1<i64>) -> f64 {
    let unit = crate::linalg::normalize_rows(&pool.mapv(f64::from)).0;
    let classes = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut means = Array2::<f64>::zeros((classes, pool.ncols()));
    for (row, &c) in unit.rows().into_iter().zip(labels) {
        let mut mean = means.row_mut(c as usize);
        mean += &row;
    }
    let means = crate::linalg::normalize_rows(&means).0;
    let total: f64 = unit.rows().into_iter().zip(labels).map(|(row, &c)| row.dot(&means.row(c as usize))).sum();
    total / pool.nrows() as f64
}
