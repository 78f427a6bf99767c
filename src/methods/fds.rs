//! Farthest-point sampling (the paper's FDS and the CoreSet / k-center
//! greedy baseline): start from the labeled samples, or a seeded random
//! one, then repeatedly add the sample least similar to everything so far.

use ndarray::ArrayView2;
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::Round;
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

/// Farthest-point sampling under cosine distance: after `round`'s labeled
/// samples (the CoreSet setting), or else from a random first sample,
/// repeatedly the sample least similar to everything picked or labeled so
/// far (ties: lowest id), never one `round` marks as taken. Returns the `k`
/// new picks in order. O(n·k·d) time at worst, O(n) memory.
///
/// A new pick `p` cannot be closer to sample `i` than `i`'s nearest pick
/// `c` when `angle(c, p) ≥ 2·angle(i, c)` (triangle inequality on the
/// sphere), so most samples skip the dot product once the picks spread out.
/// Both angles are bounded with the dot product's error, so a sample is
/// skipped only when its similarity provably would not change.
pub fn farthest_point(features: ArrayView2<f32>, k: usize, round: &Round, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    let error = f64::from(crate::linalg::dot_error_bound(features.ncols()));
    // A taken sample is never the farthest: it starts "infinitely close",
    // out of every new pick's reach.
    let mut state: Vec<Nearest> = round
        .taken
        .iter()
        .map(|&taken| match taken {
            true => Nearest { similarity: f32::INFINITY, owner: 0, reach: 0.0 },
            false => Nearest { similarity: f32::NEG_INFINITY, owner: 0, reach: f64::INFINITY },
        })
        .collect();
    let start = round.labeled.len();
    let mut picks = round.labeled.clone();
    if picks.is_empty() {
        let eligible = round.eligible();
        picks.push(eligible[rng.random_range(0..eligible.len())]);
    }
    for newest in 1..picks.len() {
        add_pick(features, &picks[..newest], &mut state, error);
    }
    while picks.len() < start + k {
        let next = add_pick(features, &picks, &mut state, error);
        picks.push(next);
    }
    picks.split_off(start)
}

/// Takes the last of `picks` into account for every sample; returns the
/// sample now least similar to all picks (the next pick).
fn add_pick(features: ArrayView2<f32>, picks: &[usize], state: &mut [Nearest], error: f64) -> usize {
    let row = |i: usize| features.row(i).to_slice().expect("features are contiguous");
    let newest = *picks.last().expect("a pick to add");
    let owner = (picks.len() - 1) as u32;
    state[newest].similarity = f32::INFINITY;
    // A lower bound on the angle between each earlier pick and the newest.
    let apart: Vec<f64> =
        picks.iter().map(|&c| (f64::from(dot(row(c), row(newest))) + error).min(1.0).acos()).collect();
    state
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
        .reduce(|| (f32::INFINITY, usize::MAX), |a, b| if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) { b } else { a })
        .1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use ndarray::Array2;
    use rand::SeedableRng;

    /// FPS written out literally: recompute every distance every round;
    /// `before` (labeled) counts as picked; `taken` is never picked.
    fn slow_fps(f: &Array2<f32>, before: &[usize], first: Option<usize>, k: usize, taken: &[bool]) -> Vec<usize> {
        let mut picks: Vec<usize> = before.iter().copied().chain(first).collect();
        while picks.len() < before.len() + k {
            let score = |i: usize| {
                picks
                    .iter()
                    .map(|&p| dot(f.row(i).as_slice().unwrap(), f.row(p).as_slice().unwrap()))
                    .fold(f32::NEG_INFINITY, f32::max)
            };
            let next = (0..f.nrows())
                .filter(|&i| !picks.contains(&i) && !taken[i])
                .min_by(|&a, &b| score(a).total_cmp(&score(b)))
                .unwrap();
            picks.push(next);
        }
        picks.split_off(before.len())
    }

    #[test]
    fn farthest_point_matches_the_literal_rule() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        for (n, d, k) in [(50, 3, 10), (300, 8, 40), (9000, 4, 6), (3000, 16, 200), (400, 2, 400)] {
            let f = unit_rows(n, d, &mut rng, None);
            let round = Round::first(n);
            let picks = farthest_point(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(9));
            assert_eq!(picks, slow_fps(&f, &[], Some(picks[0]), k, &round.taken));
        }
    }

    #[test]
    fn labeled_samples_start_the_walk_and_taken_ones_are_never_picked() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        for (n, d, k, grid) in [(300, 4, 30, None), (500, 3, 60, Some(1)), (2000, 8, 25, None)] {
            let f = unit_rows(n, d, &mut rng, grid);
            let labeled: Vec<usize> = (0..n).filter(|i| i % 37 == 5).collect();
            let mut taken = vec![false; n];
            for i in (0..n).filter(|i| i % 11 == 3).chain(labeled.iter().copied()) {
                taken[i] = true;
            }
            let round = Round { labeled: labeled.clone(), taken: taken.clone() };
            let picks = farthest_point(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(1));
            assert_eq!(picks, slow_fps(&f, &labeled, None, k, &taken));
            assert!(picks.iter().all(|&i| !taken[i]));
        }
    }
}
