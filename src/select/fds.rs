//! Farthest-point sampling (the paper's FDS and the CoreSet / k-center
//! greedy baseline): start from a seeded random sample, then repeatedly add
//! the sample least similar to everything picked so far.

use ndarray::ArrayView2;
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use crate::linalg::dot;

const SAMPLE_CHUNK: usize = 4096;

/// Farthest-point sampling under cosine distance: a random first sample,
/// then repeatedly the sample least similar to everything picked so far
/// (ties: lowest id). O(n·k·d) time, O(n) memory.
pub fn farthest_point(features: ArrayView2<f32>, k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    let n = features.nrows();
    let mut picks = vec![rng.random_range(0..n)];
    // Similarity to the nearest pick; picked samples are pinned to +inf.
    let mut nearest = vec![f32::NEG_INFINITY; n];
    while picks.len() < k {
        let last = features.row(*picks.last().unwrap());
        let last = last.as_slice().expect("features are contiguous");
        nearest[*picks.last().unwrap()] = f32::INFINITY;
        let next = nearest
            .par_chunks_mut(SAMPLE_CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                let mut best = (f32::INFINITY, usize::MAX);
                for (j, near) in chunk.iter_mut().enumerate() {
                    let i = c * SAMPLE_CHUNK + j;
                    let sim = dot(features.row(i).as_slice().expect("features are contiguous"), last);
                    *near = near.max(sim);
                    if *near < best.0 {
                        best = (*near, i);
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
        for (n, d, k) in [(50, 3, 10), (300, 8, 40), (9000, 4, 6)] {
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
