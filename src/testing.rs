//! Random pools for the unit tests: one generator, so every test draws its
//! rows the same way.

use ndarray::Array2;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// Random unit rows: uniform in a cube, or on a coarse grid (`grid =
/// Some(g)`: whole numbers in [−g, g], shifted off zero), where duplicates
/// and exact ties are common.
pub fn unit_rows(n: usize, d: usize, rng: &mut Xoshiro256PlusPlus, grid: Option<i32>) -> Array2<f32> {
    unit_rows64(n, d, rng, grid).mapv(|x| x as f32)
}

/// [`unit_rows`] with row 0 zero and row 1 one-hot in the last dimension
/// (where there is room): the edges of a coding, with no scale and with a
/// code at the clamp.
pub fn unit_rows_with_edges(n: usize, d: usize, rng: &mut Xoshiro256PlusPlus, grid: Option<i32>) -> Array2<f32> {
    let mut f = unit_rows(n, d, rng, grid);
    f.row_mut(0).fill(0.0);
    if n > 1 {
        f.row_mut(1).fill(0.0);
        f[[1, d - 1]] = 1.0;
    }
    f
}

/// [`unit_rows`] in float64, for the float64 oracles.
pub fn unit_rows64(n: usize, d: usize, rng: &mut Xoshiro256PlusPlus, grid: Option<i32>) -> Array2<f64> {
    let raw = Array2::from_shape_fn((n, d), |_| match grid {
        Some(g) => f64::from(rng.random_range(-g..=g)) + 0.1,
        None => rng.random_range(-1.0..1.0),
    });
    crate::linalg::normalize_rows(&raw).0
}

/// Unit rows around `clusters` random centres (sample `i` in cluster
/// `i % clusters`), with uniform noise of half-width `noise`; `grid` rounds
/// every value to a half-integer, for duplicates and exact ties.
pub fn clustered(n: usize, d: usize, clusters: usize, noise: f64, grid: bool, seed: u64) -> Array2<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((clusters, d), |_| rng.random_range(-1.0..1.0f64));
    let raw = Array2::from_shape_fn((n, d), |(i, j)| {
        let v = centres[[i % clusters, j]] + rng.random_range(-noise..noise);
        if grid { (v * 2.0).round() + 0.5 } else { v }
    });
    crate::linalg::normalize_rows(&raw).0.mapv(|x| x as f32)
}

/// A second round over `n` samples: every `labeled_every`-th sample
/// labeled (from 1), every `excluded_every`-th excluded (from 2); 0 for none.
pub fn round_every(n: usize, labeled_every: usize, excluded_every: usize) -> crate::methods::Round {
    let every = |m: usize, offset: usize| (0..n).filter(move |i| m > 0 && i % m == offset);
    let mut round = crate::methods::Round::first(n);
    round.labeled = every(labeled_every, 1).collect();
    for i in round.labeled.clone().into_iter().chain(every(excluded_every, 2)) {
        round.taken[i] = true;
    }
    round
}
