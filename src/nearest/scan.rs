//! Full scans: samples against every point, with a float32 product as the
//! filter and [`dot`] for every decision, in tiles spread over the threads.

use ndarray::{ArrayView2, Axis, CowArray, Ix2};
use rayon::prelude::*;

use super::Batch;
use super::sweeps::{ascending_value, descending, gather, score_key, top_and_kth};
use crate::chunks;
use crate::linalg::codes12::{self, Block, Panel};
use crate::linalg::{Codes, Columns, Packed, codes_are_fast, dot, dot_error_bound, round_up, row};

/// Candidate points remembered per sample, at most (see [`super::bounds::candidate_width`]).
pub const CANDIDATES: usize = 32;

/// What a full scan of one sample against every point finds.
pub(super) struct FullScan {
    pub best: usize,
    pub similarity: f32,
    /// The best points by filter score (the first `min(k, CANDIDATES)`),
    /// always with `best`. Fixed-size, so a scan allocates nothing: millions
    /// of tiny long-lived allocations between large transient ones would
    /// fragment the heap (nearly three times the peak memory; README).
    pub candidates: [u32; CANDIDATES],
    /// An upper bound on the exact score of every point not in `candidates`.
    pub rest_bound: f64,
    /// An upper bound on each candidate's exact score.
    pub candidate_bounds: [f64; CANDIDATES],
}

/// Full scans of the samples at batch `positions`, remembering candidates,
/// with `filter` (built from `points`).
///
/// A filter gives an upper bound on every score; the points that may win
/// are then scored with [`dot`] (see [`refine`]). The float32 filter's
/// bounds are within a few float32 errors of the scores, and the 12-bit
/// codes' within about a thousandth, so every other point keeps its filter
/// bound; the 8-bit codes' bounds are looser still, so with them the
/// points that may be among the best `width + 1` are scored as well.
/// What a scan remembers does not depend on the CPU below
/// [`CODES12_FROM`] points: the float32 filter runs everywhere, and it and
/// [`dot`] give the same bits on every CPU. From there on, a CPU with fast
/// 16-bit and 8-bit products remembers other bounds than one without: the
/// work counters differ, the assignments never do.
pub(super) fn full_scans(
    filter: &Filter,
    features: ArrayView2<f32>,
    batch: &Batch,
    positions: &[usize],
    points: ArrayView2<f32>,
    width: usize,
) -> Vec<FullScan> {
    let error = f64::from(dot_error_bound(points.ncols()));
    let k = points.nrows();
    let chunks: Vec<Vec<FullScan>> = positions
        .par_chunks(chunks::SCAN)
        .map_init(
            || (Vec::<f32>::new(), Lists::default()),
            |(upper, lists), chunk| {
                if let Filter::Exact = filter {
                    let exact = |&i: &usize| {
                        score_every_point(row(features, batch.id(i)), points, error, width, &mut lists.scored)
                    };
                    return chunk.iter().map(exact).collect();
                }
                let ids: Vec<usize> = chunk.iter().map(|&i| batch.id(i)).collect();
                let rows = features.select(Axis(0), &ids);
                let spreads = filter.upper_bounds(rows.view(), upper);
                upper
                    .chunks_exact_mut(filter.stride())
                    .zip(spreads)
                    .enumerate()
                    .map(|(r, (padded, spread))| {
                        let f = row(rows.view(), r);
                        let exact = |j| dot(f, row(points, j));
                        if filter.bounds_are_kept() {
                            keep_filter_bounds(&padded[..k], spread, error, width, lists, exact)
                        } else {
                            refine(&mut padded[..k], spread, error, width, lists, exact)
                        }
                    })
                    .collect()
            },
        )
        .collect();
    chunks.into_iter().flatten().collect()
}

/// The points, prepared for the filter of full scans: where the CPU has
/// AVX-512 VNNI, 8-bit codes for many points and 12-bit codes for fewer;
/// float32 panels otherwise, and no filter at all for a few points. Only the speed
/// differs (see [`full_scans`]). Built once per set of points: at a budget
/// of 12,811 quantising them takes milliseconds.
pub(super) enum Filter {
    Codes(Columns),
    /// 12-bit codes of the points, in panels, and their widest norm and radius.
    Codes12(Vec<Panel>, (f64, f64)),
    Float(Packed, f64),
    /// Every point scored with [`dot`]: below [`FILTERED_FROM`] points a
    /// filter's tiles, copies and second pass cost more than they save.
    Exact,
}

/// The fewest points for which full scans go through a filter.
const FILTERED_FROM: usize = 64;

/// The fewest points for which full scans take the 12-bit filter, where
/// it is fast (and the 8-bit one is not taken): from there the regression
/// check's pools, all below it, keep the float32 filter on every CPU.
const CODES12_FROM: usize = 128;

/// The fewest points for which full scans take the 8-bit filter, where it
/// is fast. Its product is cheaper, but its bounds are too coarse to keep,
/// so it scores the best `width + 1` points with [`dot`] where the float32
/// filter scores only the possible winners: with a few hundred points the
/// float32 filter is faster, with a thousand or more the 8-bit product's
/// saving wins (measured in the README's performance section).
const CODES_FROM: usize = 1024;

impl Filter {
    pub(super) fn new(points: ArrayView2<f32>) -> Self {
        if points.nrows() < FILTERED_FROM {
            Filter::Exact
        } else if points.nrows() >= CODES_FROM && codes_are_fast() {
            Filter::codes(points)
        } else if points.nrows() >= CODES12_FROM && codes12::codes_are_fast() {
            Filter::codes12(points)
        } else {
            Filter::float(points)
        }
    }

    fn codes(points: ArrayView2<f32>) -> Self {
        Filter::Codes(Codes::new(points).columns(&(0..points.nrows()).collect::<Vec<_>>()))
    }

    fn codes12(points: ArrayView2<f32>) -> Self {
        let (mut block, mut widest) = (Block::default(), (0.0f64, 0.0f64));
        let panels = (0..points.nrows())
            .step_by(codes12::PANEL)
            .map(|start| {
                let end = (start + codes12::PANEL).min(points.nrows());
                block.code(points.slice(ndarray::s![start..end, ..]));
                let (norm, radius) = block.widest();
                widest = (widest.0.max(norm), widest.1.max(radius));
                Panel::new(&block)
            })
            .collect();
        Filter::Codes12(panels, widest)
    }

    fn float(points: ArrayView2<f32>) -> Self {
        Filter::Float(Packed::new(points), f64::from(dot_error_bound(points.ncols())))
    }

    /// Whether a full scan keeps this filter's bounds for the points it
    /// does not score: the float32 filter's and the 12-bit codes' are
    /// tight enough (the 12-bit ones cost a few more rescores later, far
    /// less than scoring the best `width + 1` points at every scan).
    fn bounds_are_kept(&self) -> bool {
        matches!(self, Filter::Float(..) | Filter::Codes12(..))
    }

    fn stride(&self) -> usize {
        match self {
            Filter::Codes(columns) => columns.stride(),
            Filter::Codes12(panels, _) => panels.len() * codes12::PANEL,
            Filter::Float(packed, _) => packed.stride(),
            Filter::Exact => unreachable!("an exact scan has no filter scores"),
        }
    }

    /// Upper bounds on the scores of `rows` against every point into
    /// `upper` (rows × [`Filter::stride`]), and for each row how far below
    /// its bound a true score may lie.
    fn upper_bounds(&self, rows: ArrayView2<f32>, upper: &mut Vec<f32>) -> Vec<f64> {
        match self {
            Filter::Codes(columns) => {
                let codes = Codes::new(rows);
                let local: Vec<usize> = (0..rows.nrows()).collect();
                let (row_radius, column_radius) = codes.bounds(&local, columns, upper);
                let widest = f64::from(column_radius.iter().fold(0.0f32, |m, &r| m.max(r)));
                row_radius.into_iter().map(|r| 2.0 * (f64::from(r) + widest)).collect()
            }
            Filter::Codes12(panels, widest) => {
                let stride = panels.len() * codes12::PANEL;
                let mut block = Block::default();
                block.code(rows);
                upper.resize(rows.nrows() * stride, 0.0);
                let mut dots = Vec::new();
                for (p, panel) in panels.iter().enumerate() {
                    panel.upper32_rows(&block, &mut dots, &mut upper[p * codes12::PANEL..], stride);
                }
                (0..rows.nrows()).map(|r| block.spread(r, *widest)).collect()
            }
            Filter::Float(packed, error) => {
                packed.product_padded(rows, upper);
                // Added in float32, the sum may round by half an ulp (under
                // 2.4e-7 for the scores of near-unit vectors, below 4).
                let added = round_up(error + HALF_ULP);
                for u in upper.iter_mut() {
                    *u += added;
                }
                vec![2.0 * f64::from(added) + HALF_ULP; rows.nrows()]
            }
            Filter::Exact => unreachable!("an exact scan has no filter scores"),
        }
    }
}

/// One sample's full scan with every point scored by [`dot`]: the literal
/// definition that [`refine`] reproduces from a filter.
fn score_every_point(f: &[f32], points: ArrayView2<f32>, error: f64, width: usize, scored: &mut Vec<u64>) -> FullScan {
    scored.clear();
    let mut best = (0, f32::NEG_INFINITY);
    for j in 0..points.nrows() {
        let s = dot(f, row(points, j));
        if s > best.1 || j == 0 {
            best = (j, s);
        }
        scored.push(rank_key(round_up(f64::from(s) + error), j));
    }
    full_scan(best, scored, width)
}

/// Half an ulp of a float32 below 4, rounded up.
const HALF_ULP: f64 = 2.5e-7;

/// One sample's full scan from upper bounds on its scores (each at most
/// `spread` above the true score), which it replaces with exact bounds
/// (`dot` plus its error) where it scores a point.
///
/// A point may win only if its bound, plus [`dot`]'s error, reaches the
/// best lower bound minus that error (`reach`); those are all scored
/// (ties: lowest index). So is every point whose bound comes within three
/// errors of the `width + 1`-th best exact bound: any other point's exact
/// bound is below that, so the candidates (the best `width` exact bounds,
/// the winner first among equals) and the bound on the rest are those of a
/// scan that scored every point with [`dot`].
fn refine(
    upper: &mut [f32],
    spread: f64,
    error: f64,
    width: usize,
    lists: &mut Lists,
    exact: impl Fn(usize) -> f32,
) -> FullScan {
    let keep = width + 1;
    let Lists { gathered: list, scored, kept } = lists;
    let (reach, kth) = gather_within_reach(upper, spread, error, keep, list);
    scored.clear();
    kept.clear();
    let mut state = Refinement { reach, error, kept, keep, best: None, scored };
    // First the points at least `keep` bounds reach (nearly all of them are
    // wanted), then, in one more pass, those the cut they set still wants:
    // about the points a best-first order would score, without a sort.
    for &(_, j) in list.iter().filter(|&&(u, _)| u >= kth) {
        state.score(upper, j as usize, &exact);
    }
    let mut later = list.iter().filter(|&&(u, _)| u < kth).peekable();
    if later.peek().is_some() {
        state.keep_best_scored();
    }
    for &(u, j) in later {
        if state.wants(u) {
            let bound = state.score(upper, j as usize, &exact);
            state.keep(bound);
        }
    }
    let best = state.best.expect("the leader's bound reaches the floor");
    full_scan(best, state.scored, width)
}

/// One sample's full scan from float32 filter bounds (each at most
/// `spread` above the true score): only the points that may win are scored
/// with [`dot`]; every other point keeps its filter bound.
///
/// A point whose bound is below `reach` (the best bound, less `spread` and
/// two errors of [`dot`]) scores below the leader under [`dot`], so it can
/// neither win nor tie. The candidates are the best `width` bounds (the
/// exact bound `dot` plus its error where a point was scored, the filter
/// bound elsewhere), the winner first among equals, and the bound on the
/// rest the next one. At least `width + 1` bounds end at or above the
/// `width + 1`-th filter bound less `spread`, so only the points at or
/// above that are gathered.
fn keep_filter_bounds(
    upper: &[f32],
    spread: f64,
    error: f64,
    width: usize,
    lists: &mut Lists,
    exact: impl Fn(usize) -> f32,
) -> FullScan {
    let Lists { gathered: list, scored, .. } = lists;
    let (reach, _) = gather_within_reach(upper, spread, error, width + 1, list);
    scored.clear();
    let mut best: Option<(usize, f32)> = None;
    for &(u, j) in list.iter() {
        let j = j as usize;
        if f64::from(u) < reach {
            scored.push(rank_key(u, j));
            continue;
        }
        let s = exact(j);
        scored.push(rank_key(round_up(f64::from(s) + error), j));
        if best.is_none_or(|(b, bs)| s > bs || (s == bs && j < b)) {
            best = Some((j, s));
        }
    }
    full_scan(best.expect("the leader's bound reaches `reach`"), scored, width)
}

/// The start of a full scan from filter bounds (each at most `spread`
/// above the true score): `reach`, below which a point's bound cannot win
/// (the best bound less `spread` and two errors of [`dot`]), and the
/// `keep`-th best bound, with every point the scan may need gathered into
/// `list` (bound and index, in index order).
fn gather_within_reach(upper: &[f32], spread: f64, error: f64, keep: usize, list: &mut Vec<(f32, u32)>) -> (f64, f32) {
    let (top, kth) = top_and_kth(upper, keep);
    let reach = f64::from(top) - spread - 2.0 * error;
    // At least `keep` points have a true score above `kth - spread`, so the
    // final cut is above it too: nothing below both is ever wanted.
    let lowest = reach.min(f64::from(kth) - spread - MARGIN * error);
    list.clear();
    // A float32 at or below `lowest`, so no wanted point is left out.
    gather(upper, -round_up(-lowest), list);
    (reach, kth)
}

/// What a scan remembers, from its winner and every point it ranked with
/// its bound: the `width` best bounds as [`ranked`] orders them, and
/// the next bound as the bound on the rest.
fn full_scan((best, similarity): (usize, f32), scored: &mut Vec<u64>, width: usize) -> FullScan {
    let (candidates, rest) = ranked(scored, best, width);
    // `ranked` leaves the candidates first in `scored`, in their order.
    let mut candidate_bounds = [f64::NEG_INFINITY; CANDIDATES];
    for (b, &key) in candidate_bounds.iter_mut().zip(&scored[..scored.len().min(width)]) {
        *b = f64::from(bound_of(key));
    }
    FullScan { best, similarity, candidate_bounds, candidates, rest_bound: rest.map_or(f64::NEG_INFINITY, f64::from) }
}

/// A point whose upper bound is this many [`dot`] errors below the cut
/// cannot reach it with its exact bound (one error from `dot`, one added to
/// the bound, one to spare for the bound's rounding up).
const MARGIN: f64 = 3.0;

/// The short lists a full scan's refinement fills, kept by each worker
/// from one sample to the next, so that a scan allocates nothing.
#[derive(Default)]
struct Lists {
    /// The points whose filter bound reaches the floor, with that bound.
    gathered: Vec<(f32, u32)>,
    /// Every point scored, as [`rank_key`]s of its exact bound.
    scored: Vec<u64>,
    /// The best `keep` exact bounds so far, as [`descending`] keys, best
    /// first; filled only from the second pass on (the first scores its
    /// points whatever the cut).
    kept: Vec<u32>,
}

/// What [`refine`] has scored so far.
struct Refinement<'a> {
    reach: f64,
    error: f64,
    kept: &'a mut Vec<u32>,
    keep: usize,
    best: Option<(usize, f32)>,
    scored: &'a mut Vec<u64>,
}

impl Refinement<'_> {
    /// Whether a point with this upper bound must still be scored.
    fn wants(&self, upper: f32) -> bool {
        let cut = self.kept.get(self.keep - 1).map_or(f64::NEG_INFINITY, |&key| f64::from(ascending_value(key)));
        f64::from(upper) >= self.reach || f64::from(upper) + MARGIN * self.error >= cut
    }

    /// Scores point `j` and returns its exact bound.
    fn score(&mut self, bounds: &mut [f32], j: usize, exact: &impl Fn(usize) -> f32) -> f32 {
        let s = exact(j);
        let bound = round_up(f64::from(s) + self.error);
        bounds[j] = bound;
        self.scored.push(rank_key(bound, j));
        if self.best.is_none_or(|(b, bs)| s > bs || (s == bs && j < b)) {
            self.best = Some((j, s));
        }
        bound
    }

    /// Sets `kept` from every point scored so far.
    fn keep_best_scored(&mut self) {
        self.kept.clear();
        self.kept.extend(self.scored.iter().map(|&key| (key >> 32) as u32));
        self.kept.sort_unstable();
        self.kept.truncate(self.keep);
    }

    /// Adds one more exact bound to `kept`.
    fn keep(&mut self, bound: f32) {
        let key = descending(bound);
        let at = self.kept.partition_point(|&k| k <= key);
        if at < self.keep {
            self.kept.insert(at, key);
            self.kept.truncate(self.keep);
        }
    }
}

/// The `width` best of the `scored` points, ranked by exact bound, then
/// `best` first (so it is never cut by an equal bound), then lower index,
/// and the bound of the next one (None when there is none).
fn ranked(scored: &mut Vec<u64>, best: usize, width: usize) -> ([u32; CANDIDATES], Option<f32>) {
    // The winner's key takes index part 0, below every other point's `j + 1`.
    if let Some(key) = scored.iter_mut().find(|key| **key as u32 == index_part(best)) {
        *key &= !u64::from(u32::MAX);
    }
    if scored.len() > width + 1 {
        scored.select_nth_unstable(width);
        scored.truncate(width + 1);
    }
    scored.sort_unstable();
    let mut top = [u32::MAX; CANDIDATES];
    for (t, &key) in top.iter_mut().zip(&scored[..scored.len().min(width)]) {
        *t = point_of(key, best);
    }
    (top, scored.get(width).map(|&key| bound_of(key)))
}

/// A scored point as one integer that sorts it by exact bound (larger
/// first), then by index: `j + 1`, so that 0 is free for the winner (see
/// [`ranked`]). Integers sort with plain comparisons, where (bound, point)
/// pairs in total order need a branchy comparison for every swap (README).
fn rank_key(bound: f32, j: usize) -> u64 {
    score_key(bound, index_part(j))
}

/// Point `j`'s part of its [`rank_key`].
fn index_part(j: usize) -> u32 {
    u32::try_from(j + 1).expect("fewer than 2^32 - 1 points")
}

/// The point a [`rank_key`] stands for.
fn point_of(key: u64, best: usize) -> u32 {
    match key as u32 {
        0 => best as u32,
        j => j - 1,
    }
}

/// The exact bound a [`rank_key`] holds.
fn bound_of(key: u64) -> f32 {
    ascending_value((key >> 32) as u32)
}

/// Scores the samples at batch `positions` against every point with a
/// float32 product, in tiles, and hands each sample's filter scores and an
/// exact scorer (`dot` with point `j`) to `per_sample`. Score tiles are
/// reused across the tiles of a worker.
pub(super) fn scan<R: Send>(
    features: ArrayView2<f32>,
    batch: &Batch,
    positions: &[usize],
    points: ArrayView2<f32>,
    per_sample: impl Fn(&[f32], &dyn Fn(usize) -> f32) -> R + Sync,
) -> Vec<R> {
    let k = points.nrows();
    let packed = Packed::new(points);
    let stride = packed.stride();
    let chunks: Vec<Vec<R>> = positions
        .par_chunks(chunks::SCAN)
        .map_init(Vec::<f32>::new, |scores, chunk| {
            let rows = rows_of(features, batch, chunk);
            packed.product_padded(rows.view(), scores);
            scores
                .chunks_exact(stride)
                .enumerate()
                .map(|(r, padded)| {
                    let f = row(rows.view(), r);
                    let exact = |j: usize| dot(f, row(points, j));
                    per_sample(&padded[..k], &exact)
                })
                .collect()
        })
        .collect();
    chunks.into_iter().flatten().collect()
}

/// The rows of the samples at batch `positions`: a view where they are
/// consecutive rows of the pool (a whole pool in order), a copy otherwise.
fn rows_of<'a>(features: ArrayView2<'a, f32>, batch: &Batch, positions: &[usize]) -> CowArray<'a, f32, Ix2> {
    let ids: Vec<usize> = positions.iter().map(|&i| batch.id(i)).collect();
    match (ids.first(), ids.last()) {
        (Some(&first), Some(&last)) if ids.windows(2).all(|w| w[1] == w[0] + 1) => {
            CowArray::from(features.slice_move(ndarray::s![first..=last, ..]))
        }
        _ => CowArray::from(features.select(Axis(0), &ids)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    /// A full scan written out: every point scored with `dot`, the winner
    /// the best score (lowest index on ties), the candidates the best
    /// `width` exact bounds ranked as [`ranked`] says, the rest the next.
    fn literal(f: &[f32], points: ArrayView2<f32>, width: usize) -> (usize, f32, Vec<u32>, Vec<f64>, f64) {
        let error = f64::from(dot_error_bound(points.ncols()));
        let scores: Vec<f32> = (0..points.nrows()).map(|j| dot(f, row(points, j))).collect();
        let bounds: Vec<f32> = scores.iter().map(|&s| round_up(f64::from(s) + error)).collect();
        ranked_literally(&scores, &bounds, width)
    }

    /// The same with the float32 filter's bounds written out (a chain of
    /// fused multiply-adds, plus the error and half an ulp), kept as
    /// [`literal_kept`] keeps them.
    fn literal_float(f: &[f32], points: ArrayView2<f32>, width: usize) -> (usize, f32, Vec<u32>, Vec<f64>, f64) {
        let error = f64::from(dot_error_bound(points.ncols()));
        let added = round_up(error + HALF_ULP);
        let spread = 2.0 * f64::from(added) + HALF_ULP;
        let chain = |p: &[f32]| f.iter().zip(p).fold(0.0f32, |acc, (&x, &y)| x.mul_add(y, acc));
        let upper: Vec<f32> = (0..points.nrows()).map(|j| chain(row(points, j)) + added).collect();
        literal_kept(f, points, width, &upper, spread)
    }

    /// The same with the 12-bit filter's bounds written out, kept as
    /// [`literal_kept`] keeps them: each row
    /// `s q + δ`, the bound `s_a s_b (q_a·q_b) + n_a ρ_b + ρ_a (n_b + ρ_b)`
    /// from an integer sum, raised by half an ulp into float32; the spread
    /// twice the error terms at the points' largest norm and radius.
    fn literal_codes12(f: &[f32], points: ArrayView2<f32>, width: usize) -> (usize, f32, Vec<u32>, Vec<f64>, f64) {
        let row_coded = codes12::Measured::new(f);
        let (s, n, rho) = (row_coded.scale, row_coded.norm, row_coded.radius);
        let coded: Vec<_> = (0..points.nrows()).map(|j| codes12::Measured::new(row(points, j))).collect();
        let upper: Vec<f32> = coded
            .iter()
            .map(|p| {
                let dot: i64 = row_coded.codes.iter().zip(&p.codes).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum();
                let bound = s * p.scale * dot as f64 + n * p.radius + rho * (p.norm + p.radius) + 1e-12;
                (bound + HALF_ULP) as f32
            })
            .collect();
        let norm = coded.iter().map(|p| p.norm).fold(0.0, f64::max);
        let radius = coded.iter().map(|p| p.radius).fold(0.0, f64::max);
        let spread = 2.0 * (n * radius + rho * (norm + radius)) + 1e-12 + 2.0 * HALF_ULP;
        literal_kept(f, points, width, &upper, spread)
    }

    /// A scan that keeps filter bounds `upper` (each at most `spread` above
    /// the true score): the points whose bound comes within `spread` and
    /// two errors of the best are bounded by their exact scores, every
    /// other point by its filter bound.
    fn literal_kept(
        f: &[f32],
        points: ArrayView2<f32>,
        width: usize,
        upper: &[f32],
        spread: f64,
    ) -> (usize, f32, Vec<u32>, Vec<f64>, f64) {
        let error = f64::from(dot_error_bound(points.ncols()));
        let reach = f64::from(upper.iter().copied().fold(f32::NEG_INFINITY, f32::max)) - spread - 2.0 * error;
        let scores: Vec<f32> = (0..points.nrows()).map(|j| dot(f, row(points, j))).collect();
        let bounds: Vec<f32> = (0..points.nrows())
            .map(|j| if f64::from(upper[j]) >= reach { round_up(f64::from(scores[j]) + error) } else { upper[j] })
            .collect();
        ranked_literally(&scores, &bounds, width)
    }

    /// The winner (best score, lowest index on ties), the `width` best
    /// `bounds` (the winner first among equals, then lower index) with
    /// their bounds, and the next bound.
    fn ranked_literally(scores: &[f32], bounds: &[f32], width: usize) -> (usize, f32, Vec<u32>, Vec<f64>, f64) {
        let k = scores.len();
        let best = (0..k).fold(0, |b, j| if scores[j] > scores[b] { j } else { b });
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| bounds[b].total_cmp(&bounds[a]).then((b == best).cmp(&(a == best))).then(a.cmp(&b)));
        let shown = &order[..k.min(width)];
        let rest = order.get(width).map_or(f64::NEG_INFINITY, |&j| f64::from(bounds[j]));
        let candidate_bounds = shown.iter().map(|&j| f64::from(bounds[j])).collect();
        (best, scores[best], shown.iter().map(|&j| j as u32).collect(), candidate_bounds, rest)
    }

    #[test]
    fn rank_keys_order_as_total_cmp_and_give_back_their_parts() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut values: Vec<f32> =
            vec![0.0, -0.0, 1.0, -1.0, f32::MIN_POSITIVE, -f32::MIN_POSITIVE, f32::MAX, f32::MIN];
        values.extend((0..200).map(|_| f32::from_bits(rand::RngExt::random::<u32>(&mut rng))).filter(|v| !v.is_nan()));
        for &a in &values {
            assert_eq!(ascending_value(descending(a)).to_bits(), a.to_bits());
            for &b in &values {
                assert_eq!(descending(a).cmp(&descending(b)), b.total_cmp(&a), "{a} {b}");
            }
            for j in [0, 1, 7, 1 << 20] {
                let key = rank_key(a, j);
                assert_eq!((bound_of(key).to_bits(), point_of(key, 99)), (a.to_bits(), j as u32));
            }
        }
    }

    #[test]
    fn full_scans_equal_a_literal_scan_with_every_filter() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(21);
        // Coarse grids give duplicate points and exact ties; k from one point
        // to more than the stripes cover.
        for (case, &(k, d, grid)) in
            [(1, 4, None), (5, 3, Some(1)), (17, 8, Some(2)), (40, 16, None), (130, 12, Some(1)), (300, 24, None)]
                .iter()
                .enumerate()
        {
            let features = unit_rows(90, d, &mut rng, grid);
            let points = unit_rows(k, d, &mut rng, grid);
            for width in [1, 5, 16, 32] {
                scans_equal_the_literal(features.view(), points.view(), width, &format!("case {case}, width {width}"));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn full_scans_equal_a_literal_scan_on_random_pools(
            k in 1usize..200, d in 1usize..40, width in 1usize..=CANDIDATES,
            grid in proptest::option::of(1i32..3), near in 0usize..4, seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let features = unit_rows(40, d, &mut rng, grid);
            // Or points in a few tight bunches, whose scores differ by less
            // than the filter's spread: where the point of scoring shows.
            let points = match near {
                0 => unit_rows(k, d, &mut rng, grid),
                _ => crate::testing::clustered(k, d, 3, 10f64.powi(-3 - near as i32), false, seed),
            };
            scans_equal_the_literal(features.view(), points.view(), width, &format!("k {k}, d {d}, width {width}"));
        }
    }

    /// Every filter's full scans of `features` against `points` equal the
    /// literal scan for that filter.
    fn scans_equal_the_literal(features: ArrayView2<f32>, points: ArrayView2<f32>, width: usize, what: &str) {
        let positions: Vec<usize> = (0..features.nrows()).collect();
        let batch = Batch::All(features.nrows());
        for filter in [Filter::codes(points), Filter::codes12(points), Filter::float(points), Filter::Exact] {
            let scans = full_scans(&filter, features, &batch, &positions, points, width);
            let expected = match filter {
                Filter::Float(..) => literal_float,
                Filter::Codes12(..) => literal_codes12,
                Filter::Codes(..) | Filter::Exact => literal,
            };
            for (i, scan) in scans.iter().enumerate() {
                let (best, similarity, candidates, bounds, rest) = expected(row(features, i), points, width);
                let shown = candidates.len();
                let what = format!("{what}, sample {i}");
                assert_eq!((scan.best, scan.similarity), (best, similarity), "{what}");
                assert_eq!(&scan.candidates[..shown], &candidates[..], "{what}");
                assert!(scan.candidates[shown..].iter().all(|&j| j == u32::MAX), "{what}");
                assert_eq!(&scan.candidate_bounds[..shown], &bounds[..], "{what}");
                assert_eq!(scan.rest_bound, rest, "{what}");
            }
        }
    }
}
