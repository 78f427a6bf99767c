//! Farthest-point sampling (the paper's FDS and the CoreSet / k-center
//! greedy baseline): start from a seeded random sample, then repeatedly add
//! the sample least similar to everything picked so far.

use ndarray::ArrayView2;
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use crate::chunks;
use crate::linalg::dot;

/// What FPS keeps per sample.
#[derive(Clone, Copy)]
struct Nearest {
    /// Similarity to the nearest pick (`dot`); +inf once picked itself.
    similarity: f32,
    /// Which pick that is (its position in the pick order).
    owner: u32,
    /// A new pick at least this far (in angle) from `owner` cannot come
    /// closer: twice an upper bound on the angle to `owner`.
    reach: f64,
}

/// Farthest-point sampling under cosine distance: a random first sample,
/// then repeatedly the sample least similar to everything picked so far
/// (ties: lowest id). O(n·k·d) time at worst, O(n) memory.
///
/// A new pick `p` cannot be closer to sample `i` than `i`'s nearest pick
/// `c` when `angle(c, p) ≥ 2·angle(i, c)` (triangle inequality on the
/// sphere), so most samples skip the dot product once the picks spread out.
/// Both angles are bounded with the dot product's error, so a sample is
/// skipped only when its similarity provably would not change.
pub fn farthest_point(features: ArrayView2<f32>, k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    let (n, dim) = features.dim();
    let error = f64::from(crate::linalg::dot_error_bound(dim));
    let row = |i: usize| features.row(i).to_slice().expect("features are contiguous");
    let mut picks = vec![rng.random_range(0..n)];
    let mut state = vec![Nearest { similarity: f32::NEG_INFINITY, owner: 0, reach: f64::INFINITY }; n];
    while picks.len() < k {
        let newest = *picks.last().unwrap();
        let owner = (picks.len() - 1) as u32;
        state[newest].similarity = f32::INFINITY;
        // A lower bound on the angle between each earlier pick and the newest.
        let apart: Vec<f64> =
            picks.iter().map(|&c| (f64::from(dot(row(c), row(newest))) + error).min(1.0).acos()).collect();
        let next = state
            .par_chunks_mut(chunks::SWEEP)
            .enumerate()
            .map(|(c, chunk)| {
                let mut best = (f32::INFINITY, usize::MAX);
                for (j, near) in chunk.iter_mut().enumerate() {
                    let i = c * chunks::SWEEP + j;
                    if apart[near.owner as usize] < near.reach {
                        let sim = dot(row(i), row(newest));
                        if sim > near.similarity {
                            // Exact angle to the new owner is at most acos(sim − error).
                            let angle = (f64::from(sim) - error).clamp(-1.0, 1.0).acos();
                            *near = Nearest { similarity: sim, owner, reach: 2.0 * angle + 1e-9 };
                        }
                    }
                    if near.similarity < best.0 {
                        best = (near.similarity, i);
                    }
                }
                best
            })
            .reduce(|| (f32::INFINITY, usize::MAX), |a, b| if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) { b } else { a });
        picks.push(next.1);
    }
    picks
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;

    /// FPS written out literally: recompute every distance every round.
    fn slow_fps(f: &Array2<f32>, first: usize, k: usize) -> Vec<usize> {
        let mut picks = vec![first];
        while picks.len() < k {
            let score = |i: usize| {
                picks
                    .iter()
                    .map(|&p| dot(f.row(i).as_slice().unwrap(), f.row(p).as_slice().unwrap()))
                    .fold(f32::NEG_INFINITY, f32::max)
            };
            let next =
                (0..f.nrows()).filter(|i| !picks.contains(i)).min_by(|&a, &b| score(a).total_cmp(&score(b))).unwrap();
            picks.push(next);
        }
        picks
    }

    #[test]
    fn farthest_point_matches_the_literal_rule() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for (n, d, k) in [(50, 3, 10), (300, 8, 40), (9000, 4, 6), (3000, 16, 200), (400, 2, 400)] {
            let mut f = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0f32..1.0));
            for mut r in f.rows_mut() {
                let norm = r.dot(&r).sqrt();
                r /= norm;
            }
            let picks = farthest_point(f.view(), k, &mut Xoshiro256PlusPlus::seed_from_u64(9));
            assert_eq!(picks, slow_fps(&f, picks[0], k));
        }
    }
}
