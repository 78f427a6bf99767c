//! The pruned path: the dense oracle's assignment without an n × k product
//! per iteration.
//!
//! Every decision is made with [`dot`] (ties: lowest point index), so it
//! agrees with the oracle bit for bit. Per sample, the engine keeps the best
//! points of its last full scan (its candidates) and an upper bound on the
//! score of every other point. A unit feature's score for a point that moved
//! by `δ` changes by at most `δ`, so each candidate's bound grows by its own
//! point's movement, and the bound on the rest by the largest movement of any
//! point (or, tighter, by the displacement since a snapshot). While the best
//! candidate beats the bound by more than the dot product's error, no other
//! point can win; otherwise the sample is rescanned in full.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::layout::permute_runs;
use super::scan::{Filter, FullScan, full_scans};
use super::snapshot::{self, Snapshots};
use super::{Assignment, Batch, Work};
use crate::chunks;
use crate::error::{Result, filled};
use crate::linalg::{dot, dot_error_bound, round_up};

/// Candidate points remembered per sample for `k` points. Sixteen suffice
/// when few points crowd any one neighbourhood; with many points, samples in
/// dense regions see their 17th-best point almost as close as their best, fail
/// the bound on the rest within an iteration or two and are rescanned against
/// every point; with few points, more candidates cost more rescores than
/// they save in scans (measured; README).
pub fn candidate_width(k: usize) -> usize {
    let wanted = if k >= 1000 { 32 } else { 16 };
    k.min(wanted)
}

/// Per-sample memory carried from iteration to iteration.
///
/// Every bound is stored as `bound − drift when it was set`, rounded up to
/// f32, so the current bound is `slack + drift` without touching every
/// sample each iteration.
pub struct Pruned {
    /// The remembered candidate points of each sample, `width` per sample.
    candidates: Vec<u32>,
    /// A bound on each candidate's exact score, as a slack (f32 bits).
    /// Atomic, like `winner`, only so that parallel checks can refresh their
    /// own sample's entries in place: each entry has one writer per
    /// iteration, and relaxed atomics cost what plain loads and stores do.
    candidate_slack: Vec<AtomicU32>,
    width: usize,
    /// Each sample's nearest point when last evaluated.
    winner: Vec<AtomicU32>,
    /// Bounds every point outside the candidate list, as a slack.
    rest_slack: Vec<f32>,
    /// Sum over iterations of the largest movement of any point: bounds the
    /// rest, whichever points they are.
    drift: f64,
    /// Each point's own path length so far: bounds its candidates. Points
    /// move at different speeds (one with no samples does not move at all),
    /// so this is much tighter than `drift` for most candidates.
    point_drift: Vec<f64>,
    /// A second bound on the rest, from snapshots of the points: per sample,
    /// the snapshot and the bound relative to it.
    snapshots: Snapshots,
    rest_anchor: Vec<f32>,
    rest_stamp: Vec<u32>,
    previous: Option<Array2<f32>>,
    error: f64,
    /// The work counters over the run.
    work: Work,
}

/// What the cheap tiers decided for one sample (None from [`Pruned::check`]
/// when the bounds could not decide and every point must be scanned).
#[derive(Debug, Clone, Copy)]
pub(super) struct Decision {
    /// The nearest point.
    pub point: usize,
    /// Its similarity under [`dot`].
    pub similarity: f32,
    /// Candidates rescored besides the last winner.
    pub rescored: u32,
}

impl Pruned {
    /// State for a pool of `n` samples and `k` points; every bound starts
    /// infinite, so the first call scans everything.
    /// Fails, rather than aborting, when the per-sample state does not fit
    /// in memory.
    pub fn new(n: usize, k: usize, dim: usize) -> Result<Self> {
        let width = candidate_width(k);
        let what = "the nearest-point bounds";
        let atomics = |len: usize, value: u32| {
            Ok::<_, crate::error::Error>(filled(len, value, what)?.into_iter().map(AtomicU32::new).collect())
        };
        Ok(Pruned {
            candidates: filled(n * width, 0, what)?,
            candidate_slack: atomics(n * width, f32::INFINITY.to_bits())?,
            width,
            winner: atomics(n, 0)?,
            rest_slack: filled(n, f32::INFINITY, what)?,
            drift: 0.0,
            point_drift: vec![0.0; k],
            snapshots: Snapshots::new(k, dim),
            rest_anchor: filled(n, f32::INFINITY, what)?,
            rest_stamp: filled(n, snapshot::NONE, what)?,
            previous: None,
            error: f64::from(dot_error_bound(dim)),
            work: Work::default(),
        })
    }

    /// The work counters so far.
    pub fn work(&self) -> Work {
        self.work
    }

    /// Counts rescores made by checks outside [`Pruned::assign`].
    pub(super) fn add_rescored(&mut self, rescored: u64) {
        self.work.rescored += rescored;
    }

    /// The same assignment as [`super::dense`], for the points as they are now.
    pub fn assign(&mut self, features: ArrayView2<f32>, batch: &Batch, points: ArrayView2<f32>) -> Assignment {
        self.begin_iteration(points);
        let checks: Vec<Option<Decision>> = (0..batch.size())
            .into_par_iter()
            .with_min_len(chunks::SUM)
            .map(|i| self.check(features, batch.id(i), points))
            .collect();
        self.work.rescored += checks.iter().flatten().map(|c| u64::from(c.rescored)).sum::<u64>();
        let misses: Vec<usize> = (0..batch.size()).filter(|&i| checks[i].is_none()).collect();
        let mut scanned = self.rescan(features, batch, &misses, points).into_iter();
        let (point, similarity) = checks
            .into_iter()
            .map(|check| {
                let (best, sim) = match check {
                    Some(decision) => (decision.point, decision.similarity),
                    None => scanned.next().expect("one scan per miss"),
                };
                (best, f64::from(sim))
            })
            .unzip();
        Assignment { point, similarity }
    }

    /// Scans the samples at batch `positions` against every point and
    /// remembers what it found; returns their winners and similarities.
    pub(super) fn rescan(
        &mut self,
        features: ArrayView2<f32>,
        batch: &Batch,
        positions: &[usize],
        points: ArrayView2<f32>,
    ) -> Vec<(usize, f32)> {
        let mut found = Vec::with_capacity(positions.len());
        if positions.is_empty() {
            return found;
        }
        let filter = Filter::new(points);
        for chunk in positions.chunks(chunks::RESCAN) {
            for (&i, scan) in chunk.iter().zip(full_scans(&filter, features, batch, chunk, points, self.width)) {
                self.remember(batch.id(i), &scan);
                found.push((scan.best, scan.similarity));
            }
        }
        self.work.full_scans += positions.len() as u64;
        found
    }

    /// Each sample's nearest point when last evaluated.
    pub(super) fn last_winner(&self, id: usize) -> usize {
        self.winner[id].load(Relaxed) as usize
    }

    /// Every sample's nearest point when last evaluated.
    pub(super) fn winners(&self) -> Vec<u32> {
        self.winner.iter().map(|w| w.load(Relaxed)).collect()
    }

    /// Every sample's candidate points (`width` per sample, in sample
    /// order) and the width; the rest of the state is dropped.
    pub(super) fn into_candidates(self) -> (Vec<u32>, usize) {
        (self.candidates, self.width)
    }

    /// An upper bound on the exact score, for sample `id`, of every point
    /// outside its candidates, at the points of the last iteration.
    pub(super) fn rest_bound(&self, id: usize) -> f64 {
        let simple = f64::from(self.rest_slack[id]) + self.drift;
        let anchored = f64::from(self.rest_anchor[id]) + self.snapshots.growth(self.rest_stamp[id]);
        simple.min(anchored)
    }

    /// The dot product's error bound for this dimension.
    pub(super) fn error(&self) -> f64 {
        self.error
    }

    /// Follows a rearrangement of the samples: what was kept for sample
    /// `from[p]` is now kept for `p`.
    pub(super) fn rearrange(&mut self, from: &[usize]) {
        permute_runs(&mut self.candidates, self.width, from);
        permute_runs(&mut self.candidate_slack, self.width, from);
        permute_runs(&mut self.winner, 1, from);
        permute_runs(&mut self.rest_slack, 1, from);
        permute_runs(&mut self.rest_anchor, 1, from);
        permute_runs(&mut self.rest_stamp, 1, from);
    }

    /// The cheap tier for one sample: score the last winner, rescore only the
    /// candidates whose bound reaches it, and check the bound on the rest.
    /// A point whose exact score is at most `bound` scores at most
    /// `bound + error` under `dot`; strictly below the leader, it cannot win
    /// (nor tie, so ties still go to the lowest index). Every score computed
    /// refreshes that candidate's bound, and a decision records the winner.
    pub(super) fn check(&self, features: ArrayView2<f32>, id: usize, points: ArrayView2<f32>) -> Option<Decision> {
        let rest = self.rest_bound(id);
        if rest == f64::INFINITY {
            return None;
        }
        let f = features.row(id);
        let f = f.as_slice().expect("features are contiguous");
        let score = |j: usize| dot(f, points.row(j).as_slice().expect("points are contiguous"));
        let range = id * self.width..(id + 1) * self.width;
        let (candidates, slacks) = (&self.candidates[range.clone()], &self.candidate_slack[range]);
        let winner = self.winner[id].load(Relaxed) as usize;
        let kept = score(winner);
        let mut best = (winner, kept);
        let mut rescored = 0;
        for (slack, &j) in slacks.iter().zip(candidates) {
            let j = j as usize;
            let s = if j == winner {
                kept
            } else if f64::from(f32::from_bits(slack.load(Relaxed))) + self.point_drift[j] + self.error
                >= f64::from(kept)
            {
                rescored += 1;
                score(j)
            } else {
                continue;
            };
            slack.store(round_up(f64::from(s) + self.error - self.point_drift[j]).to_bits(), Relaxed);
            if s > best.1 || (s == best.1 && j < best.0) {
                best = (j, s);
            }
        }
        if rest + self.error < f64::from(best.1) {
            self.winner[id].store(best.0 as u32, Relaxed);
            Some(Decision { point: best.0, similarity: best.1, rescored })
        } else {
            None
        }
    }

    /// Grows every bound by the largest movement of any point since the
    /// last call. Call once per iteration, before any check.
    pub(super) fn begin_iteration(&mut self, points: ArrayView2<f32>) {
        if let Some(previous) = &self.previous {
            let moved = snapshot::movements(previous.view(), points);
            for (total, &m) in self.point_drift.iter_mut().zip(&moved) {
                *total += m;
            }
            self.drift += moved.into_iter().fold(0.0, f64::max);
        }
        self.snapshots.advance(points, &self.point_drift);
        self.previous = Some(points.to_owned());
    }

    fn remember(&mut self, id: usize, scan: &FullScan) {
        let range = id * self.width..(id + 1) * self.width;
        self.candidates[range.clone()].copy_from_slice(&scan.candidates[..self.width]);
        let candidates = &scan.candidates[..self.width];
        for ((slack, &bound), &j) in self.candidate_slack[range].iter_mut().zip(&scan.candidate_bounds).zip(candidates)
        {
            *slack.get_mut() = round_up(bound - self.point_drift[j as usize]).to_bits();
        }
        *self.winner[id].get_mut() = scan.best as u32;
        self.rest_slack[id] = round_up(scan.rest_bound - self.drift);
        let (stamp, path) = self.snapshots.current();
        self.snapshots.reanchor(self.rest_stamp[id], stamp);
        self.rest_anchor[id] = round_up(scan.rest_bound + path);
        self.rest_stamp[id] = stamp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nearest::dense;
    use crate::testing::unit_rows;
    use proptest::prelude::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    fn unit32(raw: &Array2<f64>) -> Array2<f32> {
        crate::linalg::normalize_rows(raw).0.mapv(|x| x as f32)
    }

    /// Drives the pruned path through a random walk of the points (the last
    /// `fixed` of them never move) and checks every step against the oracle.
    struct Walk {
        n: usize,
        k: usize,
        d: usize,
        step: f64,
        grid: Option<i32>,
        seed: u64,
        batch: Option<usize>,
        fixed: usize,
    }

    impl Walk {
        fn new(n: usize, k: usize, d: usize, step: f64, seed: u64) -> Self {
            Walk { n, k, d, step, grid: None, seed, batch: None, fixed: 0 }
        }

        fn agrees(&self) {
            let Walk { n, k, d, step, grid, seed, batch, fixed } = *self;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let features = unit_rows(n, d, &mut rng, grid);
            let mut raw = unit_rows(k, d, &mut rng, grid).mapv(f64::from);
            let mut pruned = Pruned::new(n, k, d).unwrap();
            for _ in 0..12 {
                let points = unit32(&raw);
                let batch = match batch {
                    Some(b) => Batch::Subset(rand::seq::index::sample(&mut rng, n, b).into_vec()),
                    None => Batch::All(n),
                };
                let fast = pruned.assign(features.view(), &batch, points.view());
                let slow = dense(features.view(), &batch, points.view());
                assert_eq!(fast, slow);
                if step > 0.0 {
                    for mut row in raw.rows_mut().into_iter().take(k - fixed.min(k)) {
                        row.mapv_inplace(|x| x + rng.random_range(-step..step));
                    }
                }
            }
        }
    }

    #[test]
    fn pruned_equals_dense_on_moving_points() {
        Walk::new(3000, 40, 16, 0.01, 1).agrees();
        Walk::new(500, 200, 8, 0.002, 2).agrees();
        Walk { batch: Some(300), ..Walk::new(800, 30, 12, 0.05, 3) }.agrees();
        // More misses than one chunk of full scans.
        Walk::new(chunks::RESCAN + 3_000, 8, 4, 0.01, 7).agrees();
    }

    #[test]
    fn pruned_equals_dense_with_ties_and_tiny_k() {
        // Duplicate points and features on a coarse grid: many exact ties.
        Walk { grid: Some(1), ..Walk::new(600, 25, 3, 0.0, 4) }.agrees();
        // Enough points for the 12-bit filter where the CPU has it.
        Walk { grid: Some(1), ..Walk::new(600, 150, 3, 0.01, 8) }.agrees();
        Walk::new(400, 5, 6, 0.01, 5).agrees();
        Walk::new(50, 1, 4, 0.1, 6).agrees();
    }

    #[test]
    fn pruned_equals_dense_with_fixed_points() {
        // Half the points never move, as labeled samples in a second round.
        Walk { fixed: 20, ..Walk::new(2000, 40, 8, 0.03, 11) }.agrees();
        Walk { fixed: 5, grid: Some(2), ..Walk::new(700, 6, 4, 0.05, 12) }.agrees();
    }

    #[test]
    fn still_points_are_never_rescanned() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let features = unit_rows(2000, 32, &mut rng, None);
        let points = unit_rows(64, 32, &mut rng, None);
        let mut pruned = Pruned::new(2000, 64, 32).unwrap();
        pruned.assign(features.view(), &Batch::All(2000), points.view());
        assert_eq!(pruned.work.full_scans, 2000);
        pruned.assign(features.view(), &Batch::All(2000), points.view());
        // Only near-ties (within the dot product's error) need the candidates.
        assert_eq!(pruned.work.full_scans, 2000);
        assert!(pruned.work.rescored <= 5, "{}", pruned.work.rescored);
    }

    #[test]
    fn points_that_oscillate_in_place_are_not_rescanned() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(10);
        let features = unit_rows(2000, 32, &mut rng, None);
        let start = unit_rows(64, 32, &mut rng, None).mapv(f64::from);
        let wobble = unit_rows(64, 32, &mut rng, None).mapv(f64::from) * 0.1;
        let mut pruned = Pruned::new(2000, 64, 32).unwrap();
        for i in 0..40 {
            let raw = if i % 2 == 0 { start.clone() } else { &start + &wobble };
            let points = unit32(&raw);
            let fast = pruned.assign(features.view(), &Batch::All(2000), points.view());
            assert_eq!(fast, dense(features.view(), &Batch::All(2000), points.view()));
        }
        // The path-length bound has grown past any margin by now...
        assert!(pruned.drift > 2.0, "{}", pruned.drift);
        // ...but no point is ever further than its wobble from the first snapshot.
        assert_eq!(pruned.work.full_scans, 2000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pruned_equals_dense_on_random_pools(
            // Points on both sides of the count where full scans start to filter.
            n in 1usize..400, k in 1usize..130, d in 1usize..24, fixed in 0usize..8,
            step in 0.0f64..0.1, tied in proptest::bool::ANY, seed in 0u64..1000,
        ) {
            Walk { grid: tied.then_some(2), fixed, ..Walk::new(n, k, d, step, seed) }.agrees();
        }
    }
}
