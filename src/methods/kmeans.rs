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

use super::{Outcome, Round};
use crate::chunks;
use crate::error::Result;
use crate::linalg::{Screen, dot, row};
use crate::nearest::{Assignment, Engine, Mode, group_by_point};

/// Lloyd iterations at most (the loop also stops when no assignment changes).
pub const MAX_ITERATIONS: usize = 100;

/// Clusters unit-norm `features` into `k` groups after `round` (its labeled
/// samples are fixed centres: seeded around, never moved), then maps each
/// free centre, in seeding order, to its most similar sample not taken.
/// `on_iteration(i, objective)` follows the Lloyd iterations; when they
/// converge early, the last call has `i = MAX_ITERATIONS − 1`.
pub fn select(
    features: &mut Array2<f32>,
    k: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
    mut on_iteration: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let Seeding { seeds, nearest } = plus_plus_seeds(features.view(), k, round, rng)?;
    let all: Vec<usize> = seeds.iter().chain(&round.labeled).copied().collect();
    let mut centres = features.select(Axis(0), &all);
    let mut engine = Engine::new(features, all.len(), Mode::Pruned)?;
    let objective = lloyd(&mut engine, &mut centres, k, nearest, &mut on_iteration);
    let optimize_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (picks, work) = engine.map(centres.view(), k, round.taken.clone());
    Ok(Outcome::new(picks, seeds, objective, optimize_seconds, start.elapsed().as_secs_f64(), work))
}

/// Lloyd iterations from `centres` (the first `free` move, the rest are
/// fixed; `first` is every sample's nearest among them, as the seeding
/// found it) until no assignment changes (or [`MAX_ITERATIONS`]); returns
/// the mean cosine distance of the samples to their centres at each
/// iteration.
fn lloyd(
    engine: &mut Engine,
    centres: &mut Array2<f32>,
    free: usize,
    first: Assignment,
    on_iteration: &mut impl FnMut(usize, f64),
) -> Vec<f64> {
    lloyd_steps(engine, centres, free, first, MAX_ITERATIONS, on_iteration)
}

/// [`lloyd`], for at most `steps` iterations.
fn lloyd_steps(
    engine: &mut Engine,
    centres: &mut Array2<f32>,
    free: usize,
    first: Assignment,
    steps: usize,
    on_iteration: &mut impl FnMut(usize, f64),
) -> Vec<f64> {
    let mut previous: Option<Vec<usize>> = None;
    let mut sums = MemberSums::new(free, centres.ncols());
    let mut objective = Vec::new();
    let mut first = Some(first);
    for i in 0..steps {
        let assignment = first.take().unwrap_or_else(|| engine.assign(centres.view()));
        let distance: Vec<f64> = assignment.similarity.iter().map(|s| 1.0 - s).collect();
        objective.push(chunks::mean(&distance));
        let converged = previous.as_ref() == Some(&assignment.point);
        // Converged: the steps left are skipped, so progress jumps to the last.
        on_iteration(if converged { steps - 1 } else { i }, objective[i]);
        if converged {
            break;
        }
        sums.follow(engine.features(), previous.as_deref(), &assignment.point);
        sums.move_centres(centres);
        previous = Some(assignment.point);
    }
    objective
}

/// The pool's `k` spherical k-means clusters (k-means++ seeds, Lloyd to
/// convergence): each sample's cluster.
pub fn clusters(features: &mut Array2<f32>, k: usize, rng: &mut Xoshiro256PlusPlus) -> Result<Vec<usize>> {
    clusters_within(features, k, MAX_ITERATIONS, rng)
}

/// [`clusters`] with at most `steps` Lloyd iterations.
pub fn clusters_within(
    features: &mut Array2<f32>,
    k: usize,
    steps: usize,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Vec<usize>> {
    let Seeding { seeds, nearest } = plus_plus_seeds(features.view(), k, &Round::first(features.nrows()), rng)?;
    let mut centres = features.select(Axis(0), &seeds);
    let mut engine = Engine::new(features, k, Mode::Pruned)?;
    lloyd_steps(&mut engine, &mut centres, k, nearest, steps, &mut |_, _| {});
    Ok(engine.assign(centres.view()).point)
}

/// The sum of each free centre's members, in fixed point: every feature
/// cut to a multiple of 2^-32 (an error under 2.4e-10 per value, far below
/// the float32 rounding of a unit row's typical entries), summed as
/// integers. Integer sums do not depend on order, so an iteration updates
/// them by the samples that changed centre, where a float64 sum would have
/// to be redone over the whole pool.
struct MemberSums {
    free: usize,
    dim: usize,
    /// Centre `c`'s sums at `c * dim ..`.
    fixed: Vec<i64>,
}

/// Units of the fixed point per 1.0. With |x| <= 1, a sum of up to 2^31
/// samples fits in an i64.
const FIXED_ONE: f64 = 4_294_967_296.0;

impl MemberSums {
    fn new(free: usize, dim: usize) -> Self {
        MemberSums { free, dim, fixed: vec![0; free * dim] }
    }

    /// Updates the sums from the assignment `before` (None: nothing yet)
    /// to `after`.
    fn follow(&mut self, features: ArrayView2<f32>, before: Option<&[usize]>, after: &[usize]) {
        let Some(before) = before else {
            let centres = after.iter().max().map_or(0, |&m| m + 1).max(self.free);
            let members = group_by_point(after, centres);
            self.fixed.par_chunks_mut(self.dim.max(1)).zip(members).for_each(|(sum, members)| {
                for i in members {
                    add_fixed(sum, row(features, i), 1);
                }
            });
            return;
        };
        for (i, (&from, &to)) in before.iter().zip(after).enumerate().filter(|(_, (a, b))| a != b) {
            if from < self.free {
                add_fixed(&mut self.fixed[from * self.dim..(from + 1) * self.dim], row(features, i), -1);
            }
            if to < self.free {
                add_fixed(&mut self.fixed[to * self.dim..(to + 1) * self.dim], row(features, i), 1);
            }
        }
    }

    /// Each free centre becomes the normalised sum of its members; a centre
    /// with no members, or whose members cancel out, stays where it is.
    fn move_centres(&self, centres: &mut Array2<f32>) {
        for (mut centre, sum) in centres.rows_mut().into_iter().zip(self.fixed.chunks_exact(self.dim.max(1))) {
            let sum: Vec<f64> = sum.iter().map(|&x| x as f64 / FIXED_ONE).collect();
            let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                centre.iter_mut().zip(&sum).for_each(|(c, s)| *c = (s / norm) as f32);
            }
        }
    }
}

/// `sum += sign * x`, with `x` in fixed point.
fn add_fixed(sum: &mut [i64], x: &[f32], sign: i64) {
    for (s, &v) in sum.iter_mut().zip(x) {
        *s += sign * to_fixed(v);
    }
}

/// `x` cut to a multiple of 2^-32 (towards zero), in units of 2^-32: one
/// conversion instruction, where rounding to nearest is a libm call on
/// baseline x86-64.
fn to_fixed(x: f32) -> i64 {
    (f64::from(x) * FIXED_ONE) as i64
}

/// k-means++ under cosine distance: `k` new seeds among the samples `round`
/// does not mark taken, the first uniformly (when nothing is labeled), each
/// next one with probability proportional to `1 − cos` to its nearest seed
/// or labeled sample (the squared Euclidean distance between unit vectors,
/// halved).
pub fn plus_plus_seeds(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Seeding> {
    let start = round.labeled.len();
    let mut seeds = round.labeled.clone();
    if seeds.is_empty() {
        let eligible = round.eligible();
        seeds.push(eligible[rng.random_range(0..eligible.len())]);
    }
    // The centres Lloyd starts from: the new seeds, then the labeled samples.
    let centre = |t: usize| if t < start { k + t } else { t - start } as u32;
    // A taken sample weighs nothing in the draws.
    let mut distance: Vec<f64> = round.taken.iter().map(|&t| if t { 0.0 } else { f64::INFINITY }).collect();
    let mut nearest = vec![Nearest::NONE; features.nrows()];
    let screen = Screen::new(features)?;
    let mut pass = |t: usize, seeds: &[usize], distance: &mut Vec<f64>| {
        let newest = Newest { id: seeds[t], centre: centre(t) };
        nearer(features, &screen, newest, &round.taken, distance, &mut nearest)
    };
    for t in 0..seeds.len() - 1 {
        pass(t, &seeds, &mut distance);
    }
    while seeds.len() < start + k {
        let sums = pass(seeds.len() - 1, &seeds, &mut distance);
        seeds.push(draw(&distance, &sums, &seeds, &round.taken, rng));
    }
    pass(seeds.len() - 1, &seeds, &mut distance);
    let nearest = Assignment {
        point: nearest.iter().map(|n| n.centre as usize).collect(),
        similarity: nearest.iter().map(|n| f64::from(n.similarity)).collect(),
    };
    Ok(Seeding { seeds: seeds.split_off(start), nearest })
}

/// What k-means++ seeding found.
pub struct Seeding {
    /// The new seeds, in order.
    pub seeds: Vec<usize>,
    /// Every sample's nearest centre (the new seeds, then the labeled
    /// samples) under [`dot`], ties to the lower centre: the engine's
    /// assignment to those centres.
    pub nearest: Assignment,
}

/// A sample's nearest centre so far.
#[derive(Clone, Copy)]
struct Nearest {
    similarity: f32,
    centre: u32,
}

impl Nearest {
    const NONE: Nearest = Nearest { similarity: f32::NEG_INFINITY, centre: u32::MAX };

    /// Takes `centre` at `similarity` if it is nearer, or as near and lower.
    fn offer(&mut self, similarity: f32, centre: u32) {
        if similarity > self.similarity || (similarity == self.similarity && centre < self.centre) {
            *self = Nearest { similarity, centre };
        }
    }
}

/// The seed a pass of [`nearer`] brings in: its sample and its centre.
#[derive(Clone, Copy)]
struct Newest {
    id: usize,
    centre: u32,
}

/// Brings each eligible sample's distance to its nearest seed, and every
/// sample's nearest centre, up to date with the seed `newest`; returns the
/// distances' sums per chunk. A sample is read in full only when `screen`
/// says the seed may come nearer, or as near.
fn nearer(
    features: ArrayView2<f32>,
    screen: &Screen,
    newest: Newest,
    taken: &[bool],
    distance: &mut [f64],
    nearest: &mut [Nearest],
) -> Vec<f64> {
    // A seed is at distance 0 from itself, whatever rounding says.
    distance[newest.id] = 0.0;
    let last = row(features, newest.id);
    let query = screen.query(last);
    distance
        .par_chunks_mut(chunks::SWEEP)
        .zip(nearest.par_chunks_mut(chunks::SWEEP))
        .enumerate()
        .map(|(c, (chunk, nearest))| {
            let mut sum = 0.0;
            for (j, (d, nearest)) in chunk.iter_mut().zip(nearest).enumerate() {
                let i = c * chunks::SWEEP + j;
                let bound = screen.upper_bound(i, &query);
                // Rounding is monotone: the exact distance is at least this.
                let may_come_nearer = !taken[i] && (1.0 - bound).max(0.0) < *d;
                if may_come_nearer || bound >= f64::from(nearest.similarity) {
                    let sim = dot(row(features, i), last);
                    nearest.offer(sim, newest.centre);
                    if !taken[i] {
                        *d = d.min((1.0 - f64::from(sim)).max(0.0));
                    }
                }
                if !taken[i] {
                    sum += *d;
                }
            }
            sum
        })
        .collect()
}

/// A sample drawn with probability proportional to `weight`; if every weight
/// is zero (all remaining samples duplicate a seed), the lowest id neither
/// used nor taken.
fn draw(weight: &[f64], chunk_sums: &[f64], used: &[usize], taken: &[bool], rng: &mut Xoshiro256PlusPlus) -> usize {
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
    (0..weight.len()).find(|&i| !used.contains(&i) && !taken[i]).expect("the budget fits in the samples left")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use rand::SeedableRng;

    fn blobs(n: usize, d: usize, clusters: usize, seed: u64) -> Array2<f32> {
        crate::testing::clustered(n, d, clusters, 0.3, false, seed)
    }

    /// Lloyd's algorithm written out literally: every sample against every
    /// centre, ties to the lowest centre, the first `free` centres as
    /// normalised means (the others never move).
    fn slow_lloyd(f: &Array2<f32>, mut centres: Array2<f32>, free: usize) -> Array2<f32> {
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
            for (c, mut centre) in centres.rows_mut().into_iter().enumerate().take(free) {
                // The members' sum, afresh, in the fixed point of 2^-32.
                let mut fixed = vec![0i64; f.ncols()];
                for i in (0..f.nrows()).filter(|&i| point[i] == c) {
                    for (s, &v) in fixed.iter_mut().zip(f.row(i)) {
                        *s += (f64::from(v) * 2f64.powi(32)).trunc() as i64;
                    }
                }
                let sum: Vec<f64> = fixed.iter().map(|&x| x as f64 / 2f64.powi(32)).collect();
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
        for (n, d, k, seed, grid) in
            [(400, 5, 6, 1, false), (1000, 12, 25, 2, false), (60, 3, 60, 3, false), (900, 4, 30, 4, true)]
        {
            // On a grid: duplicate samples and exact ties between centres.
            let f = crate::testing::clustered(n, d, 8, 0.3, grid, seed);
            let round = Round::first(n);
            let Seeding { seeds, nearest } =
                plus_plus_seeds(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
            let mut centres = f.select(Axis(0), &seeds);
            let mut pool = f.clone();
            let mut engine = Engine::new(&mut pool, k, Mode::Pruned).unwrap();
            let mut calls = Vec::new();
            let objective = lloyd(&mut engine, &mut centres, k, nearest, &mut |i, o| calls.push((i, o)));
            assert_eq!(centres, slow_lloyd(&f, f.select(Axis(0), &seeds), k));
            assert!(objective.windows(2).all(|w| w[1] <= w[0] + 1e-9), "{objective:?}");
            // One progress call per iteration; the converged one reports the last step.
            let last = objective.len() - 1;
            assert!(last < MAX_ITERATIONS - 1, "converges early here");
            let steps: Vec<usize> = calls.iter().map(|c| c.0).collect();
            assert_eq!(steps, (0..last).chain([MAX_ITERATIONS - 1]).collect::<Vec<_>>());
            assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), objective);
        }
    }

    #[test]
    fn labeled_samples_are_fixed_centres_and_taken_ones_never_seeds() {
        for (n, d, k, seed) in [(600, 5, 6, 1), (1500, 12, 20, 2)] {
            let f = blobs(n, d, 8, seed);
            let labeled: Vec<usize> = (0..n).filter(|i| i % 97 == 3).collect();
            let mut taken = vec![false; n];
            for i in (0..n).filter(|i| i % 5 == 0).chain(labeled.iter().copied()) {
                taken[i] = true;
            }
            let round = Round { labeled: labeled.clone(), taken: taken.clone() };
            let Seeding { seeds, nearest } =
                plus_plus_seeds(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
            assert_eq!(seeds.len(), k);
            assert!(seeds.iter().all(|&s| !taken[s]), "{seeds:?}");
            let all: Vec<usize> = seeds.iter().chain(&labeled).copied().collect();
            let mut centres = f.select(Axis(0), &all);
            let mut pool = f.clone();
            let mut engine = Engine::new(&mut pool, all.len(), Mode::Pruned).unwrap();
            lloyd(&mut engine, &mut centres, k, nearest, &mut |_, _| {});
            assert_eq!(centres, slow_lloyd(&f, f.select(Axis(0), &all), k));
            assert_eq!(centres.slice(ndarray::s![k.., ..]), f.select(Axis(0), &labeled));
            // The whole method: free centres map to samples not taken.
            let mut pool = f.clone();
            let outcome = select(&mut pool, k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(seed), |_, _| {});
            assert!(outcome.unwrap().selected.iter().all(|&s| !taken[s]));
        }
    }

    /// k-means++ written out literally: every distance recomputed from
    /// every seed at every step, then the same chunked sums and draw.
    fn slow_seeds(f: &Array2<f32>, k: usize, round: &Round, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
        let mut seeds = round.labeled.clone();
        if seeds.is_empty() {
            let eligible = round.eligible();
            seeds.push(eligible[rng.random_range(0..eligible.len())]);
        }
        while seeds.len() < round.labeled.len() + k {
            let distance: Vec<f64> = (0..f.nrows())
                .map(|i| match round.taken[i] || seeds.contains(&i) {
                    true => 0.0,
                    false => seeds
                        .iter()
                        .map(|&s| {
                            (1.0 - f64::from(dot(f.row(i).as_slice().unwrap(), f.row(s).as_slice().unwrap()))).max(0.0)
                        })
                        .fold(f64::INFINITY, f64::min),
                })
                .collect();
            let sums: Vec<f64> = distance.chunks(chunks::SWEEP).map(|c| c.iter().sum()).collect();
            seeds.push(draw(&distance, &sums, &seeds, &round.taken, rng));
        }
        seeds.split_off(round.labeled.len())
    }

    #[test]
    fn seeds_match_the_literal_algorithm_with_ties_and_labels() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let cases = [
            (5000, 16, 12, None, 0, 0),
            (700, 3, 40, Some(1), 3, 0),
            (9000, 6, 8, Some(2), 0, 7),
            (800, 2, 9, Some(1), 4, 3),
        ];
        for (n, d, k, grid, labeled, excluded_every) in cases {
            let f = unit_rows(n, d, &mut rng, grid);
            let mut round = Round::first(n);
            for i in (0..n).filter(|i| i % 13 == 4).take(labeled) {
                round.labeled.push(i);
                round.taken[i] = true;
            }
            for i in (0..n).filter(|i| excluded_every > 0 && i % excluded_every == 1) {
                round.taken[i] = true;
            }
            for seed in 0..3 {
                let fast = plus_plus_seeds(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
                let slow = slow_seeds(&f, k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(seed));
                assert_eq!(fast.seeds, slow, "n {n}, d {d}, seed {seed}");
                // Every sample's nearest centre, taken ones too, as the engine's oracle finds it.
                let all: Vec<usize> = slow.iter().chain(&round.labeled).copied().collect();
                let oracle =
                    crate::nearest::dense(f.view(), &crate::nearest::Batch::All(n), f.select(Axis(0), &all).view());
                assert_eq!(fast.nearest, oracle, "n {n}, d {d}, seed {seed}");
            }
        }
    }

    #[test]
    fn seeds_are_distinct_spread_and_seeded() {
        let f = blobs(2000, 8, 10, 4);
        let round = Round::first(2000);
        let a = plus_plus_seeds(f.view(), 10, &round, &mut Xoshiro256PlusPlus::seed_from_u64(7)).unwrap().seeds;
        let b = plus_plus_seeds(f.view(), 10, &round, &mut Xoshiro256PlusPlus::seed_from_u64(7)).unwrap().seeds;
        assert_eq!(a, b);
        let mut clusters: Vec<usize> = a.iter().map(|i| i % 10).collect();
        clusters.sort_unstable();
        clusters.dedup();
        assert!(clusters.len() >= 8, "k-means++ should cover most blobs: {clusters:?}");
        // All samples identical: weights vanish, seeds are still distinct.
        let same = Array2::from_elem((5, 3), 3f32.sqrt().recip());
        let mut seeds =
            plus_plus_seeds(same.view(), 5, &Round::first(5), &mut Xoshiro256PlusPlus::seed_from_u64(1)).unwrap().seeds;
        seeds.sort_unstable();
        assert_eq!(seeds, vec![0, 1, 2, 3, 4]);
    }
}
