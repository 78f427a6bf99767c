//! Farthest-point sampling (the paper's FDS and the CoreSet / k-center
//! greedy baseline): start from the labeled samples, or a seeded random
//! one, then repeatedly add the sample least similar to everything so far.

use ndarray::ArrayView2;
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::Round;
use crate::chunks;
use crate::comm::{Comm, Part};
use crate::error::Result;
use crate::linalg::{Screen, dot};

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
/// new picks in order. O(n·k·d) time at worst; memory beyond the features:
/// O(n), and n·d bytes for the screen.
///
/// A new pick `p` cannot be closer to sample `i` than `i`'s nearest pick
/// `c` when `angle(c, p) ≥ 2·angle(i, c)` (triangle inequality on the
/// sphere), so on tight pools most samples skip the dot product once the
/// picks spread out. On spread pools that test rarely holds, and the 8-bit
/// screen (`linalg::Screen`) rules out most samples instead. Both tests
/// are bounded with the dot product's error, so a sample is skipped only
/// when its similarity provably would not change.
pub fn farthest_point(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Vec<usize>> {
    let comm = Comm::single();
    farthest_point_part(features, k, round, rng, &Part::whole(&comm, features.nrows()))
}

/// [`farthest_point`] over the ranks of `part.comm`, `features` being this
/// rank's rows: each rank proposes its farthest sample, and the least
/// similar proposal (ties: the lowest id) is the pick on every rank.
pub fn farthest_point_part(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
    part: &Part,
) -> Result<Vec<usize>> {
    let error = f64::from(crate::linalg::dot_error_bound(features.ncols()));
    let screen = Screen::new(features)?;
    let mut state: Vec<Nearest> = round.taken[part.first..part.first + part.rows]
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
    let mut pick_rows: Vec<Vec<f32>> = part.rows(features, &picks).rows().into_iter().map(|r| r.to_vec()).collect();
    for newest in 1..picks.len() {
        add_pick(features, &screen, &picks[..newest], &pick_rows[..newest], &mut state, error, part);
    }
    while picks.len() < start + k {
        let next = add_pick(features, &screen, &picks, &pick_rows, &mut state, error, part);
        picks.push(next);
        pick_rows.push(part.rows(features, &[next]).row(0).to_vec());
    }
    Ok(picks.split_off(start))
}

/// Updates every local sample's nearest pick with the newest of `picks`
/// (whose rows are `pick_rows`); returns the next pick over all ranks.
fn add_pick(
    features: ArrayView2<f32>,
    screen: &Screen,
    picks: &[usize],
    pick_rows: &[Vec<f32>],
    state: &mut [Nearest],
    error: f64,
    part: &Part,
) -> usize {
    let row = |i: usize| features.row(i).to_slice().expect("features are contiguous");
    let newest = pick_rows.last().expect("a pick to add");
    let owner = (picks.len() - 1) as u32;
    if let Some(i) = part.local(*picks.last().expect("a pick")) {
        state[i].similarity = f32::INFINITY;
    }
    let query = screen.query(newest);
    let apart: Vec<f64> = pick_rows.iter().map(|c| (f64::from(dot(c, newest)) + error).min(1.0).acos()).collect();
    let local = state
        .par_chunks_mut(chunks::SWEEP)
        .enumerate()
        .map(|(c, chunk)| {
            let mut best = (f32::INFINITY, usize::MAX);
            for (j, near) in chunk.iter_mut().enumerate() {
                let i = c * chunks::SWEEP + j;
                if apart[near.owner as usize] < near.reach && screen.upper_bound(i, &query) > f64::from(near.similarity)
                {
                    let sim = dot(row(i), newest);
                    if sim > near.similarity {
                        let angle = (f64::from(sim) - error).clamp(-1.0, 1.0).acos();
                        *near = Nearest { similarity: sim, owner, reach: 2.0 * angle + 1e-9 };
                    }
                }
                if near.similarity < best.0 {
                    best = (near.similarity, part.first + i);
                }
            }
            best
        })
        .reduce(|| (f32::INFINITY, usize::MAX), farther);
    let proposals = part.comm.gather(&[f64::from(local.0), local.1 as f64]);
    proposals.chunks_exact(2).map(|p| (p[0] as f32, p[1] as usize)).fold((f32::INFINITY, usize::MAX), farther).1
}

/// The less similar of two (similarity, id) proposals; ties to the lower id.
fn farther(a: (f32, usize), b: (f32, usize)) -> (f32, usize) {
    if b.0 < a.0 || (b.0 == a.0 && b.1 < a.1) { b } else { a }
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
        let cases =
            [(50, 3, 10, None), (300, 8, 40, None), (9000, 4, 6, None), (3000, 16, 200, None), (400, 2, 400, None)];
        // On a coarse grid: duplicates and exact ties.
        for (n, d, k, grid) in cases.into_iter().chain([(2000, 6, 80, Some(2)), (600, 3, 100, Some(1))]) {
            let f = unit_rows(n, d, &mut rng, grid);
            let round = Round::first(n);
            let picks = farthest_point(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(9)).unwrap();
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
            let picks = farthest_point(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(1)).unwrap();
            assert_eq!(picks, slow_fps(&f, &labeled, None, k, &taken));
            assert!(picks.iter().all(|&i| !taken[i]));
        }
    }
}
