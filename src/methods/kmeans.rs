//! Spherical k-means (cosine) with k-means++ seeding, then the same greedy
//! mapping from centres to samples as ActiveFT.
//!
//! Lloyd iterations use the exact nearest-point engine: centres move a
//! little each iteration, which is exactly what its bounds are made for.

use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::Outcome;
use crate::chunks;
use crate::error::Result;
use crate::linalg::dot;
use crate::nearest::{Engine, Mode, group_by_point};

/// Lloyd iterations at most (the loop also stops when no assignment changes).
pub const MAX_ITERATIONS: usize = 100;

/// Clusters unit-norm `features` into `k` groups, then maps each centre, in
/// seeding order, to its most similar untaken sample. `on_iteration(i,
/// objective)` follows the Lloyd iterations.
pub fn select(
    features: &mut Array2<f32>,
    k: usize,
    rng: &mut Xoshiro256PlusPlus,
    mut on_iteration: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let n = features.nrows();
    let seeds = plus_plus_seeds(features.view(), k, rng);
    let mut centres = features.select(Axis(0), &seeds);
    let mut engine = Engine::new(features, k, Mode::Pruned)?;
    let objective = lloyd(&mut engine, &mut centres, &mut on_iteration);
    let optimize_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (mut selected, work) = engine.map(centres.view(), k, vec![false; n]);
    selected.sort_unstable();
    let map_seconds = start.elapsed().as_secs_f64();
    Ok(Outcome { selected, init: seeds, losses: objective, optimize_seconds, map_seconds, work })
}

/// Lloyd iterations from `centres` until no assignment changes (or
/// [`MAX_ITERATIONS`]); returns the mean cosine distance of the samples to
/// their centres at each iteration.
fn lloyd(engine: &mut Engine, centres: &mut Array2<f32>, on_iteration: &mut impl FnMut(usize, f64)) -> Vec<f64> {
    let mut previous: Option<Vec<usize>> = None;
    let mut objective = Vec::new();
    for i in 0..MAX_ITERATIONS {
        let assignment = engine.assign(centres.view());
        let distance: Vec<f64> = assignment.similarity.iter().map(|s| 1.0 - s).collect();
        objective.push(chunks::mean(&distance));
        on_iteration(i, objective[i]);
        if previous.as_ref() == Some(&assignment.point) {
            break;
        }
        update_centres(engine.features(), &assignment.point, centres);
        previous = Some(assignment.point);
    }
    objective
}

/// Each centre becomes the normalised mean of its members (summed in f64 in
/// sample order); a centre with no members, or whose members cancel out,
/// stays where it is.
fn update_centres(features: ArrayView2<f32>, point_of: &[usize], centres: &mut Array2<f32>) {
    let members = group_by_point(point_of, centres.nrows());
    centres.axis_iter_mut(Axis(0)).into_par_iter().zip(members).for_each(|(mut centre, members)| {
        let mut sum = vec![0.0; features.ncols()];
        for i in members {
            crate::linalg::add_scaled(&mut sum, 1.0, features.row(i).as_slice().expect("features are contiguous"));
        }
        let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            centre.iter_mut().zip(&sum).for_each(|(c, s)| *c = (s / norm) as f32);
        }
    });
}

/// k-means++ under cosine distance: the first seed uniformly, each next one
/// with probability proportional to `1 − cos` to its nearest seed (the
/// squared Euclidean distance between unit vectors, halved).
pub fn plus_plus_seeds(features: ArrayView2<f32>, k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    let n = features.nrows();
    let mut seeds = vec![rng.random_range(0..n)];
    let mut distance = vec![f64::INFINITY; n];
    while seeds.len() < k {
        let newest = *seeds.last().unwrap();
        // A seed is at distance 0 from itself, whatever rounding says.
        distance[newest] = 0.0;
        let last = features.row(newest);
        let last = last.as_slice().expect("features are contiguous");
        // Update distances and sum them per fixed chunk, in parallel.
        let sums: Vec<f64> = distance
            .par_chunks_mut(chunks::SWEEP)
            .enumerate()
            .map(|(c, chunk)| {
                let mut sum = 0.0;
                for (j, d) in chunk.iter_mut().enumerate() {
                    let sim = dot(features.row(c * chunks::SWEEP + j).as_slice().expect("contiguous"), last);
                    *d = d.min((1.0 - f64::from(sim)).max(0.0));
                    sum += *d;
                }
                sum
            })
            .collect();
        seeds.push(draw(&distance, &sums, &seeds, rng));
    }
    seeds
}

/// A sample drawn with probability proportional to `weight`; if every weight
/// is zero (all remaining samples duplicate a seed), the lowest unused id.
fn draw(weight: &[f64], chunk_sums: &[f64], used: &[usize], rng: &mut Xoshiro256PlusPlus) -> usize {
    let total: f64 = chunk_sums.iter().sum();
    if total > 0.0 {
        let mut target = rng.random::<f64>() * total;
        for (c, &s) in chunk_sums.iter().enumerate() {
            if target < s {
                let start = c * chunks::SWEEP;
                for (j, &w) in weight[start..(start + chunks::SWEEP).min(weight.len())].iter().enumerate() {
                    if target < w && w > 0.0 {
                        return start + j;
                    }
                    target -= w;
                }
            }
            target -= s;
        }
        // Rounding left the target past the end: take the last positive weight.
        if let Some(i) = weight.iter().rposition(|&w| w > 0.0) {
            return i;
        }
    }
    (0..weight.len()).find(|i| !used.contains(i)).expect("k <= n leaves an unused sample")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn blobs(n: usize, d: usize, clusters: usize, seed: u64) -> Array2<f32> {
        crate::testing::clustered(n, d, clusters, 0.3, false, seed)
    }

    /// Lloyd's algorithm written out literally: every sample against every
    /// centre, ties to the lowest centre, centres as normalised means.
    fn slow_lloyd(f: &Array2<f32>, mut centres: Array2<f32>) -> Array2<f32> {
        let mut previous: Option<Vec<usize>> = None;
        for _ in 0..MAX_ITERATIONS {
            let point: Vec<usize> = f
                .rows()
                .into_iter()
                .map(|x| {
                    let sims: Vec<f32> =
                        centres.rows().into_iter().map(|c| dot(x.as_slice().unwrap(), c.as_slice().unwrap())).collect();
                    (0..sims.len()).fold(0, |b, j| if sims[j] > sims[b] { j } else { b })
                })
                .collect();
            if previous.as_ref() == Some(&point) {
                break;
            }
            for (c, mut centre) in centres.rows_mut().into_iter().enumerate() {
                let mut sum = vec![0.0f64; f.ncols()];
                for i in (0..f.nrows()).filter(|&i| point[i] == c) {
                    for (s, &v) in sum.iter_mut().zip(f.row(i)) {
                        *s += f64::from(v);
                    }
                }
                let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm > 0.0 {
                    centre.iter_mut().zip(&sum).for_each(|(c, s)| *c = (s / norm) as f32);
                }
            }
            previous = Some(point);
        }
        centres
    }

    #[test]
    fn lloyd_matches_the_literal_algorithm() {
        for (n, d, k, seed) in [(400, 5, 6, 1), (1000, 12, 25, 2), (60, 3, 60, 3)] {
            let f = blobs(n, d, 8, seed);
            let seeds = plus_plus_seeds(f.view(), k, &mut Xoshiro256PlusPlus::seed_from_u64(seed));
            let mut centres = f.select(Axis(0), &seeds);
            let mut pool = f.clone();
            let mut engine = Engine::new(&mut pool, k, Mode::Pruned).unwrap();
            let objective = lloyd(&mut engine, &mut centres, &mut |_, _| {});
            assert_eq!(centres, slow_lloyd(&f, f.select(Axis(0), &seeds)));
            assert!(objective.windows(2).all(|w| w[1] <= w[0] + 1e-9), "{objective:?}");
        }
    }

    #[test]
    fn seeds_are_distinct_spread_and_seeded() {
        let f = blobs(2000, 8, 10, 4);
        let a = plus_plus_seeds(f.view(), 10, &mut Xoshiro256PlusPlus::seed_from_u64(7));
        let b = plus_plus_seeds(f.view(), 10, &mut Xoshiro256PlusPlus::seed_from_u64(7));
        assert_eq!(a, b);
        let mut clusters: Vec<usize> = a.iter().map(|i| i % 10).collect();
        clusters.sort_unstable();
        clusters.dedup();
        assert!(clusters.len() >= 8, "k-means++ should cover most blobs: {clusters:?}");
        // All samples identical: weights vanish, seeds are still distinct.
        let same = Array2::from_elem((5, 3), 3f32.sqrt().recip());
        let mut seeds = plus_plus_seeds(same.view(), 5, &mut Xoshiro256PlusPlus::seed_from_u64(1));
        seeds.sort_unstable();
        assert_eq!(seeds, vec![0, 1, 2, 3, 4]);
    }
}
