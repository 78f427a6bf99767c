//! Which point is nearest to each sample: the dense oracle and the pruned
//! path that gives the same answer without an n × k product per iteration.
//!
//! Both decide with [`dot`] (ties: lowest point index), so they agree bit for
//! bit. The pruned path keeps, per sample, its `CANDIDATES` best points from
//! its last full scan and an upper bound on the score of every other point.
//! A unit feature's score for a point that moved by `δ` changes by at most `δ`,
//! so each candidate's bound grows by its own point's movement, and the bound
//! on the rest by the largest movement of any point.
//! While the best candidate beats the bound by more than the dot product's
//! error, no other point can win; otherwise the sample is rescanned in full.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::checkpoint::{self, Checkpoints};
use super::layout::permute_runs;
use super::loss::{Assignment, Batch};
use crate::linalg::{dot, dot_error_bound, gemm_nt, refined_argmax, score_tolerance};

/// Samples per parallel work item; fixed so results do not depend on threads.
const SAMPLE_CHUNK: usize = 256;
/// Full scans done and recorded at a time, so their results (about 400
/// bytes per sample) never pile up for the whole pool: 7 MB, not 520 MB,
/// in the first iteration at ImageNet scale.
const RESCAN_CHUNK: usize = 16_384;
/// Candidate points remembered per sample, at most (see [`candidate_width`]).
pub const CANDIDATES: usize = 32;

/// Candidate points remembered per sample for `k` points. Sixteen suffice
/// when few points crowd any one neighbourhood; with many points, samples in
/// dense regions see their 17th-best point almost as close as their best, fail
/// the bound on the rest within an iteration or two and are rescanned against
/// every point. Measured (Gaussian mixtures, 30 iterations): at 128,116 x 384
/// with 1,281 points, 16 candidates rescanned 3.2% of samples per iteration
/// (7.1 s), 32 rescanned none (5.2 s); at 50,000 x 384 with 500 points, 16
/// took 7.7 s for 300 iterations and 32 took 9.3 s.
pub fn candidate_width(k: usize) -> usize {
    let wanted = if k >= 1000 { 32 } else { 16 };
    k.min(wanted)
}

/// The nearest point of every batch sample, from a full product.
pub fn dense(features: ArrayView2<f32>, batch: &Batch, points: ArrayView2<f32>) -> Assignment {
    let positions: Vec<usize> = (0..batch.len()).collect();
    let tolerance = score_tolerance(points.ncols());
    let (point, similarity) = scan(features, batch, &positions, points, |scores, exact| {
        let (best, similarity) = refined_argmax(scores.iter().copied(), tolerance, |_| true, exact).expect("k >= 1");
        (best, f64::from(similarity))
    })
    .into_iter()
    .unzip();
    Assignment { point, similarity }
}

/// What a full scan of one sample against every point finds.
struct FullScan {
    pub best: usize,
    pub similarity: f32,
    /// The best points by filter score (the first `min(k, CANDIDATES)`),
    /// always with `best`. Fixed-size, so a scan allocates nothing: millions
    /// of tiny long-lived allocations between large transient ones would
    /// fragment the heap (measured: 310 MB instead of 118 MB peak RSS at
    /// 50,000 x 384 with budget 1,000).
    candidates: [u32; CANDIDATES],
    /// An upper bound on the exact score of every point not in `candidates`.
    rest_bound: f64,
    /// An upper bound on each candidate's exact score.
    candidate_bounds: [f64; CANDIDATES],
}

#[cfg(test)]
#[test]
fn top_candidates_keep_the_exact_winner_and_bound_the_rest() {
    let scores: Vec<f32> = (0..5000).map(|j| (j % 97) as f32).collect();
    // 96 is the top score 51 times; 95 (not among the 16 best) is the exact winner.
    let (candidates, rest) = top_candidates(&scores, 95, 16);
    assert!(candidates[..16].contains(&95));
    assert!(candidates[..16].iter().filter(|&&j| j != 95).all(|&j| scores[j as usize] == 96.0));
    assert_eq!(rest, Some(96.0));
    let (small, rest) = top_candidates(&scores[..3], 2, 16);
    assert_eq!((&small[..3], rest), (&[2, 1, 0][..], None));
    // Against a full sort, on rows with many ties.
    for seed in 0..200u32 {
        let row: Vec<f32> = (0..(seed as usize % 60 + 1))
            .map(|j| (((j as u32).wrapping_mul(2_654_435_761) ^ seed) % 7) as f32)
            .collect();
        let best = (seed as usize * 31) % row.len();
        let mut order: Vec<u32> = (0..row.len() as u32).collect();
        order.sort_by(|&a, &b| {
            row[b as usize]
                .total_cmp(&row[a as usize])
                .then((b as usize == best).cmp(&(a as usize == best)))
                .then(a.cmp(&b))
        });
        let width = [1, 5, 16, 32][seed as usize % 4];
        let (top, rest) = top_candidates(&row, best, width);
        let shown = row.len().min(width);
        let mut want = order[..shown].to_vec();
        let mut want_rest = order.get(width).map(|&j| row[j as usize]);
        if !want.contains(&(best as u32)) {
            // The winner takes the last place; the bound covers the one it displaced.
            let displaced = row[want[shown - 1] as usize];
            want_rest = Some(want_rest.map_or(displaced, |r| r.max(displaced)));
            want[shown - 1] = best as u32;
        }
        assert_eq!(&top[..shown], &want[..], "row {row:?} best {best} width {width}");
        assert_eq!(rest, want_rest, "row {row:?} best {best} width {width}");
    }
}

/// Full scans of the samples at batch `positions`, remembering candidates.
fn full_scans(
    features: ArrayView2<f32>,
    batch: &Batch,
    positions: &[usize],
    points: ArrayView2<f32>,
    width: usize,
) -> Vec<FullScan> {
    let tolerance = score_tolerance(points.ncols());
    let filter_error = f64::from(dot_error_bound(points.ncols()));
    scan(features, batch, positions, points, |scores, exact| {
        let (best, similarity) = refined_argmax(scores.iter().copied(), tolerance, |_| true, exact).expect("k >= 1");
        let (candidates, rest) = top_candidates(scores, best, width);
        let bound = |s: f32| f64::from(s) + filter_error;
        FullScan {
            best,
            similarity,
            candidate_bounds: candidates.map(|j| bound(scores.get(j as usize).copied().unwrap_or(f32::NEG_INFINITY))),
            candidates,
            rest_bound: rest.map_or(f64::NEG_INFINITY, bound),
        }
    })
}

/// Scores the samples at batch `positions` against every point with a
/// float32 product, in tiles, and hands each sample's filter scores and an
/// exact scorer (`dot` with point `j`) to `per_sample`. Score tiles are
/// reused across the tiles of a worker.
fn scan<R: Send>(
    features: ArrayView2<f32>,
    batch: &Batch,
    positions: &[usize],
    points: ArrayView2<f32>,
    per_sample: impl Fn(&[f32], &dyn Fn(usize) -> f32) -> R + Sync,
) -> Vec<R> {
    let k = points.nrows();
    let chunks: Vec<Vec<R>> = positions
        .par_chunks(SAMPLE_CHUNK)
        .map_init(Vec::<f32>::new, |buffer, chunk| {
            let ids: Vec<usize> = chunk.iter().map(|&i| batch.id(i)).collect();
            let rows = features.select(Axis(0), &ids);
            buffer.resize(ids.len() * k, 0.0);
            let mut scores = ArrayViewMut2::from_shape((ids.len(), k), &mut buffer[..]).expect("sized above");
            gemm_nt(rows.view(), points, &mut scores);
            scores
                .rows()
                .into_iter()
                .zip(rows.rows())
                .map(|(row, f)| {
                    let f = f.as_slice().expect("gathered rows are contiguous");
                    let exact = |j: usize| dot(f, points.row(j).as_slice().expect("points are contiguous"));
                    per_sample(row.as_slice().expect("score rows are contiguous"), &exact)
                })
                .collect()
        })
        .collect();
    chunks.into_iter().flatten().collect()
}

/// The indices of the `width` highest filter scores (best first; only the
/// first `min(k, width)` entries are meaningful), always including `best`
/// (the exact winner), and the highest filter score among the rest (None
/// when every point is a candidate).
///
/// One pass keeping the best `width + 1` in a sorted array: almost
/// every score fails the first comparison, so this costs about k
/// comparisons, where a selection would move the whole row several times.
fn top_candidates(scores: &[f32], best: usize, width: usize) -> ([u32; CANDIDATES], Option<f32>) {
    debug_assert!((1..=CANDIDATES).contains(&width));
    let keep = width + 1;
    // Ranked by score, then `best` first (so it is never cut by an equal
    // score), then the lower index (guaranteed by the scan order).
    let ranks_above = |a: (f32, bool), b: (f32, bool)| a.0 > b.0 || (a.0 == b.0 && a.1 && !b.1);
    let mut kept = [(f32::NEG_INFINITY, false, u32::MAX); CANDIDATES + 1];
    let mut len = 0;
    for (j, &score) in scores.iter().enumerate() {
        let key = (score, j == best);
        if len == keep && !ranks_above(key, (kept[keep - 1].0, kept[keep - 1].1)) {
            continue;
        }
        let mut at = len.min(keep - 1);
        while at > 0 && ranks_above(key, (kept[at - 1].0, kept[at - 1].1)) {
            kept[at] = kept[at - 1];
            at -= 1;
        }
        kept[at] = (score, j == best, j as u32);
        len = (len + 1).min(keep);
    }
    let mut rest = (len == keep).then(|| kept[width].0);
    let width = len.min(width);
    let mut top = [u32::MAX; CANDIDATES];
    for (t, &(_, _, j)) in top.iter_mut().zip(&kept[..width]) {
        *t = j;
    }
    // With more than CANDIDATES near-ties the exact winner can rank below the
    // cut by filter score; swap it in and let the bound cover the one it displaces.
    if !top[..width].contains(&(best as u32)) {
        let displaced = scores[top[width - 1] as usize];
        rest = Some(rest.map_or(displaced, |r| r.max(displaced)));
        top[width - 1] = best as u32;
    }
    (top, rest)
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
    checkpoints: Checkpoints,
    rest_anchor: Vec<f32>,
    rest_stamp: Vec<u32>,
    previous: Option<Array2<f32>>,
    error: f64,
    /// Samples rescanned in full over the run.
    pub full_scans: u64,
    /// Candidate scores recomputed over the run (besides each winner's).
    pub rescored: u64,
}

/// What the cheap tiers decided for one sample: its nearest point, the
/// similarity, and how many candidates besides the last winner were rescored.
/// None when the bounds could not decide and every point must be scanned.
pub(super) type Check = Option<(usize, f32, u32)>;

/// `x` rounded up to an f32, so a bound stays a bound.
fn up(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) < x { y.next_up() } else { y }
}

impl Pruned {
    /// State for a pool of `n` samples and `k` points; every bound starts
    /// infinite, so the first call scans everything.
    pub fn new(n: usize, k: usize, dim: usize) -> Self {
        let width = candidate_width(k);
        Pruned {
            candidates: vec![0; n * width],
            candidate_slack: (0..n * width).map(|_| AtomicU32::new(f32::INFINITY.to_bits())).collect(),
            width,
            winner: (0..n).map(|_| AtomicU32::new(0)).collect(),
            rest_slack: vec![f32::INFINITY; n],
            drift: 0.0,
            point_drift: vec![0.0; k],
            checkpoints: Checkpoints::new(k, dim),
            rest_anchor: vec![f32::INFINITY; n],
            rest_stamp: vec![checkpoint::NONE; n],
            previous: None,
            error: f64::from(dot_error_bound(dim)),
            full_scans: 0,
            rescored: 0,
        }
    }

    /// The same assignment as [`dense`], for the points as they are now.
    pub fn assign(&mut self, features: ArrayView2<f32>, batch: &Batch, points: ArrayView2<f32>) -> Assignment {
        self.begin_iteration(points);
        let checks: Vec<Check> = (0..batch.len())
            .into_par_iter()
            .with_min_len(SAMPLE_CHUNK)
            .map(|i| self.check(features, batch.id(i), points))
            .collect();
        self.rescored += checks.iter().flatten().map(|c| u64::from(c.2)).sum::<u64>();
        let misses: Vec<usize> = (0..batch.len()).filter(|&i| checks[i].is_none()).collect();
        let mut scanned = self.rescan(features, batch, &misses, points).into_iter();
        let (point, similarity) = checks
            .into_iter()
            .map(|check| {
                let (best, sim) = match check {
                    Some((best, sim, _)) => (best, sim),
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
        for chunk in positions.chunks(RESCAN_CHUNK) {
            for (&i, scan) in chunk.iter().zip(full_scans(features, batch, chunk, points, self.width)) {
                self.remember(batch.id(i), &scan);
                found.push((scan.best, scan.similarity));
            }
        }
        self.full_scans += positions.len() as u64;
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
        let anchored = f64::from(self.rest_anchor[id]) + self.checkpoints.growth(self.rest_stamp[id]);
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
    pub(super) fn check(&self, features: ArrayView2<f32>, id: usize, points: ArrayView2<f32>) -> Check {
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
            slack.store(up(f64::from(s) + self.error - self.point_drift[j]).to_bits(), Relaxed);
            if s > best.1 || (s == best.1 && j < best.0) {
                best = (j, s);
            }
        }
        if rest + self.error < f64::from(best.1) {
            self.winner[id].store(best.0 as u32, Relaxed);
            Some((best.0, best.1, rescored))
        } else {
            None
        }
    }

    /// Grows every bound by the largest movement of any point since the
    /// last call. Call once per iteration, before any check.
    pub(super) fn begin_iteration(&mut self, points: ArrayView2<f32>) {
        if let Some(previous) = &self.previous {
            let moved = checkpoint::movements(previous.view(), points);
            for (total, &m) in self.point_drift.iter_mut().zip(&moved) {
                *total += m;
            }
            self.drift += moved.into_iter().fold(0.0, f64::max);
        }
        self.checkpoints.advance(points, &self.point_drift);
        self.previous = Some(points.to_owned());
    }

    fn remember(&mut self, id: usize, scan: &FullScan) {
        let range = id * self.width..(id + 1) * self.width;
        self.candidates[range.clone()].copy_from_slice(&scan.candidates[..self.width]);
        let candidates = &scan.candidates[..self.width];
        for ((slack, &bound), &j) in self.candidate_slack[range].iter_mut().zip(&scan.candidate_bounds).zip(candidates)
        {
            *slack.get_mut() = up(bound - self.point_drift[j as usize]).to_bits();
        }
        *self.winner[id].get_mut() = scan.best as u32;
        self.rest_slack[id] = up(scan.rest_bound - self.drift);
        let (stamp, path) = self.checkpoints.current();
        self.checkpoints.reanchor(self.rest_stamp[id], stamp);
        self.rest_anchor[id] = up(scan.rest_bound + path);
        self.rest_stamp[id] = stamp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::activeft::loss::Points;
    use proptest::prelude::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    fn unit_rows(n: usize, d: usize, rng: &mut Xoshiro256PlusPlus, grid: Option<i32>) -> Array2<f32> {
        let raw = Array2::from_shape_fn((n, d), |_| match grid {
            // Coarse values make exact ties between points common.
            Some(g) => f64::from(rng.random_range(-g..=g)) + 0.1,
            None => rng.random_range(-1.0..1.0),
        });
        crate::linalg::normalize_rows(&raw).0.mapv(|x| x as f32)
    }

    /// Drives the pruned path through a random walk of the points and checks
    /// every step against the dense oracle.
    fn agrees_along_a_walk(
        n: usize,
        k: usize,
        d: usize,
        step: f64,
        grid: Option<i32>,
        seed: u64,
        batch: Option<usize>,
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let features = unit_rows(n, d, &mut rng, grid);
        let mut raw = unit_rows(k, d, &mut rng, grid).mapv(f64::from);
        let mut pruned = Pruned::new(n, k, d);
        for _ in 0..12 {
            let points = Points::new(&raw);
            let batch = match batch {
                Some(b) => Batch::Subset(rand::seq::index::sample(&mut rng, n, b).into_vec()),
                None => Batch::All(n),
            };
            let fast = pruned.assign(features.view(), &batch, points.unit32.view());
            let slow = dense(features.view(), &batch, points.unit32.view());
            assert_eq!(fast, slow);
            if step > 0.0 {
                raw.mapv_inplace(|x| x + rng.random_range(-step..step));
            }
        }
    }

    #[test]
    fn pruned_equals_dense_on_moving_points() {
        agrees_along_a_walk(3000, 40, 16, 0.01, None, 1, None);
        agrees_along_a_walk(500, 200, 8, 0.002, None, 2, None);
        agrees_along_a_walk(800, 30, 12, 0.05, None, 3, Some(300));
        // More misses than one chunk of full scans.
        agrees_along_a_walk(RESCAN_CHUNK + 3_000, 8, 4, 0.01, None, 7, None);
    }

    #[test]
    fn pruned_equals_dense_with_ties_and_tiny_k() {
        // Duplicate points and features on a coarse grid: many exact ties.
        agrees_along_a_walk(600, 25, 3, 0.0, Some(1), 4, None);
        agrees_along_a_walk(400, 5, 6, 0.01, None, 5, None);
        agrees_along_a_walk(50, 1, 4, 0.1, None, 6, None);
    }

    #[test]
    fn still_points_are_never_rescanned() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let features = unit_rows(2000, 32, &mut rng, None);
        let points = unit_rows(64, 32, &mut rng, None);
        let mut pruned = Pruned::new(2000, 64, 32);
        pruned.assign(features.view(), &Batch::All(2000), points.view());
        assert_eq!(pruned.full_scans, 2000);
        pruned.assign(features.view(), &Batch::All(2000), points.view());
        // Only near-ties (within the dot product's error) need the candidates.
        assert_eq!(pruned.full_scans, 2000);
        assert!(pruned.rescored <= 5, "{}", pruned.rescored);
    }

    #[test]
    fn points_that_oscillate_in_place_are_not_rescanned() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(10);
        let features = unit_rows(2000, 32, &mut rng, None);
        let start = unit_rows(64, 32, &mut rng, None).mapv(f64::from);
        let wobble = unit_rows(64, 32, &mut rng, None).mapv(f64::from) * 0.1;
        let mut pruned = Pruned::new(2000, 64, 32);
        for i in 0..40 {
            let raw = if i % 2 == 0 { start.clone() } else { &start + &wobble };
            let points = Points::new(&raw);
            let fast = pruned.assign(features.view(), &Batch::All(2000), points.unit32.view());
            assert_eq!(fast, dense(features.view(), &Batch::All(2000), points.unit32.view()));
        }
        // The path-length bound has grown past any margin by now...
        assert!(pruned.drift > 2.0, "{}", pruned.drift);
        // ...but no point is ever further than its wobble from the first snapshot.
        assert_eq!(pruned.full_scans, 2000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pruned_equals_dense_on_random_pools(
            n in 1usize..400, k in 1usize..60, d in 1usize..24,
            step in 0.0f64..0.1, tied in proptest::bool::ANY, seed in 0u64..1000,
        ) {
            agrees_along_a_walk(n, k, d, step, tied.then_some(2), seed, None);
        }
    }
}
