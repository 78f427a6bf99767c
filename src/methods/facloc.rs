//! Facility location: the exact greedy maximisation of
//! `Σ_i max_{s ∈ S} (1 + cos(f_i, f_s))`, the selection that minimises
//! `eval`'s own mean coverage (k-medoids under cosine distance, with the
//! classic 1 − 1/e guarantee for the greedy).
//!
//! With `c_i` the best similarity of sample `i` to the selection (−1 before
//! the first pick), adding `j` gains `Σ_i max(0, cos(f_i, f_j) − c_i)`.
//! Gains only shrink as the selection grows, so an old gain bounds the new
//! one (the lazy greedy), and each pick recomputes only the leading
//! candidates: first an estimate (an upper bound, from the float32
//! product, or from 12-bit codes where the CPU multiplies them faster:
//! [`codes12`]), then, for the few that lead, the gain itself with float64
//! similarities ([`dot64`]), so gains are a float64 greedy's to rounding;
//! gains within [`TIE`] of the best are ties, which go to the lowest id.
//!
//! The first estimate after a sample is served is a *full round*: every
//! candidate against the whole pool, which the lazy greedy would need
//! anyway there (similarities are symmetric, so each pair of tiles of the
//! pool is multiplied once and read both ways). On the way each sample
//! lists its [`LISTED`] most similar candidates. Once a sample's coverage
//! reaches the least similarity on its list it is *resolved*: no candidate
//! off its list can gain from it, so its part of every later gain is read
//! from the lists instead of from its row. Within a few hundred picks most samples are resolved, and a gain
//! costs a pass over the rest. The lists also lower stale keys: a sample
//! served better takes a known amount from each candidate it lists.
//!
//! Memory is O(n · [`LISTED`]): no n × n matrix.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use super::{Outcome, Round, kmeans};
use crate::chunks::rounds;
use crate::error::{Result, filled};
use crate::linalg::codes12::{self, Block, Panel, Scales};
use crate::linalg::{Packed, dot_error_bound, dot64, row};
use crate::nearest::Work;

/// Gains this close to the best (relative) are ties, decided by id.
pub const TIE: f64 = 1e-12;
/// Candidates recomputed together (in parallel) when none is current.
const BATCH: usize = 64;
// The full round's strips of BATCH candidates are single panels when coded.
const _: () = assert!(BATCH == codes12::PANEL);
/// The same where the estimates go through 12-bit codes: each batch codes
/// the unresolved rows again, so more candidates share that pass, at the
/// price of estimating some that a smaller batch would have left stale.
const CODED_BATCH: usize = 256;
/// Rows of the pool per parallel tile (consecutive groups): large enough
/// for the matrix product to run near its best rate.
const TILE_ROWS: usize = 512;
/// Fewer rows than this are scored by plain dot products.
const FEW: usize = 4;
/// Pools from this many samples estimate through 12-bit codes where the
/// CPU makes them cheap ([`codes12::codes_are_fast`]). Smaller ones keep
/// float32 estimates, so their work counters (the regression check's
/// pools) are the same on every CPU.
const CODED_FROM: usize = 4096;
/// Lloyd iterations for `--partitions`: at ImageNet scale k-means does not
/// settle in 100, and the parts only have to be compact, not optimal.
const PARTITION_STEPS: usize = 10;

/// How well a candidate's gain is known at the current pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// `key` bounds the gain from above (from an earlier pick).
    Stale,
    /// `key` bounds it from above by an estimate.
    Estimated,
    /// `key` is the gain.
    Exact,
}

/// A candidate in the heap: the largest key first, then the lowest id.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    key: f64,
    id: u32,
    /// The pick `known` refers to; an older one makes it stale.
    stamp: u32,
    known: Known,
}

impl Candidate {
    fn known(&self, stamp: u32) -> Known {
        if self.stamp == stamp { self.known } else { Known::Stale }
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.total_cmp(&other.key).then(other.id.cmp(&self.id))
    }
}

/// The candidates each sample lists in the full round: enough that most
/// samples are resolved well before the budget is spent, few enough that
/// the lists stay a small share of the features' memory.
const LISTED: usize = 64;

/// A sample's most similar candidates, seen from the candidates' side
/// (`listers(j)`: the samples listing `j`, with their float32 similarity).
/// A sample is *resolved* once its best similarity to the selection reaches
/// `beyond`, a bound on its similarity to every candidate off its list:
/// from then on only listed candidates can gain from it.
struct Lists {
    /// Each sample's own list, in tiles of `tile` samples.
    forward: Vec<Nearest>,
    tile: usize,
    /// Per sample: the least similarity on its list plus the float32
    /// error, so no candidate off the list is more similar.
    beyond: Vec<f64>,
    /// `listers(j)` is `sample[start[j]..start[j + 1]]`.
    start: Vec<usize>,
    sample: Vec<u32>,
    similarity: Vec<f32>,
}

impl Lists {
    /// The candidates sample `i` lists, with their float32 similarity.
    fn listed(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let nearest = &self.forward[i / self.tile];
        let heap = (i % self.tile) * nearest.width..(i % self.tile + 1) * nearest.width;
        let listed = nearest.id[heap.clone()].iter().zip(&nearest.similarity[heap]);
        listed.filter(|&(&j, _)| j != u32::MAX).map(|(&j, &s)| (j as usize, s))
    }

    /// The samples listing candidate `j`, in id order, with their float32
    /// similarity.
    fn listers(&self, j: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.start[j]..self.start[j + 1];
        self.sample[range.clone()].iter().map(|&i| i as usize).zip(self.similarity[range].iter().copied())
    }
}

/// The `width` most similar candidates offered so far to each of a run of
/// samples, as a min-heap per sample: every candidate left out is at most
/// as similar as the heap's least.
struct Nearest {
    width: usize,
    similarity: Vec<f32>,
    id: Vec<u32>,
}

impl Nearest {
    fn new(rows: usize, width: usize) -> Result<Self> {
        let what = "facloc's candidate lists";
        Ok(Nearest {
            width,
            similarity: filled(rows * width, f32::NEG_INFINITY, what)?,
            id: filled(rows * width, u32::MAX, what)?,
        })
    }

    /// Offers the candidates `ids` at similarities `scores` to sample `r`.
    fn offer(&mut self, r: usize, scores: &[f32], ids: &[usize]) {
        let heap = r * self.width..(r + 1) * self.width;
        // SAFETY: the body was chosen for this CPU.
        unsafe { (BODIES.offer)(&mut self.similarity[heap.clone()], &mut self.id[heap], scores, ids) }
    }

    /// The least similarity listed for sample `r` (−∞ when the list has room).
    fn least(&self, r: usize) -> f32 {
        self.similarity[r * self.width]
    }
}

/// A tile of the pool in the full round: its samples' lists so far, and
/// the estimates so far of its samples as candidates.
struct Tile {
    range: Range<usize>,
    nearest: Nearest,
    above: Above,
}

impl Tile {
    fn new(range: Range<usize>, width: usize) -> Result<Self> {
        Ok(Tile { nearest: Nearest::new(range.len(), width)?, above: Above::new(range.len()), range })
    }
}

/// The candidates among consecutive samples, offered together: their ids,
/// and which of the samples they are when some are not candidates.
struct Offered {
    ids: Vec<usize>,
    at: Option<Vec<usize>>,
}

impl Offered {
    fn new(samples: Range<usize>, candidate: &[bool]) -> Self {
        let ids: Vec<usize> = samples.clone().filter(|&j| candidate[j]).collect();
        let at = (ids.len() < samples.len()).then(|| ids.iter().map(|&j| j - samples.start).collect());
        Offered { ids, at }
    }

    /// Offers the candidates to sample `r` of `nearest`, given its scores
    /// against all the samples (`kept` holds the candidates' among them).
    fn offer(&self, nearest: &mut Nearest, r: usize, scores: &[f32], kept: &mut Vec<f32>) {
        match &self.at {
            None => nearest.offer(r, scores, &self.ids),
            Some(at) => {
                kept.clear();
                kept.extend(at.iter().map(|&a| scores[a]));
                nearest.offer(r, kept, &self.ids);
            }
        }
    }
}

/// `out` (resized) as the transpose of the first `cols` columns of the
/// rows of `wide`, `stride` apart: row `c` of `out` is column `c`.
fn turn(wide: &[f32], stride: usize, cols: usize, out: &mut Vec<f32>) {
    let rows = wide.len() / stride;
    out.resize(rows * cols, 0.0);
    // A line of `out` at a time: its rows' stores, one per column, would
    // otherwise each land on another line, `rows` floats apart.
    for first in (0..rows).step_by(TURNED) {
        let last = (first + TURNED).min(rows);
        for c in 0..cols {
            for r in first..last {
                out[c * rows + r] = wide[r * stride + c];
            }
        }
    }
}

/// Rows [`turn`] takes at once: a cache line of float32.
const TURNED: usize = 16;

/// Scores [`Nearest::offer`] looks over at once for one worth taking.
const OFFERED: usize = 32;

/// The portable body of [`Nearest::offer`] on one sample's heap.
fn offer_plain(similarity: &mut [f32], id: &mut [u32], scores: &[f32], ids: &[usize]) {
    offer_with(similarity, id, scores, ids, mask_above);
}

/// Bit `k` set where `scores[k] > least` (at most [`OFFERED`] scores).
fn mask_above(scores: &[f32], least: f32) -> u32 {
    scores.iter().enumerate().fold(0u32, |mask, (k, &s)| mask | (u32::from(s > least) << k))
}

/// [`Nearest::offer`] on one sample's heap, with `mask` as [`mask_above`].
#[inline(always)]
fn offer_with(
    similarity: &mut [f32],
    id: &mut [u32],
    scores: &[f32],
    ids: &[usize],
    mask: impl Fn(&[f32], f32) -> u32,
) {
    // Most stretches have nothing to take once the lists fill: one pass
    // over each finds out.
    for (scores, ids) in scores.chunks(OFFERED).zip(ids.chunks(OFFERED)) {
        // The least only rises, so a score not above it now never will be
        // in this stretch.
        let mut above = mask(scores, similarity[0]);
        while above != 0 {
            let k = above.trailing_zeros() as usize;
            above &= above - 1;
            if scores[k] > similarity[0] {
                replace_least(similarity, id, scores[k], ids[k] as u32);
            }
        }
    }
}

/// The portable body of the sums in [`Above::of`]: each score's part
/// added to its column's sum and count.
#[inline(always)]
fn add_parts_plain(sum: &mut [f64], count: &mut [u64], scores: &[f32], c: f64, error: f64) {
    for ((sum, count), &s) in sum.iter_mut().zip(count).zip(scores) {
        let (part, near) = Above::part(f64::from(s) - c, error);
        *sum += part;
        *count += near;
    }
}

type OfferBody = unsafe fn(&mut [f32], &mut [u32], &[f32], &[usize]);
type AddPartsBody = unsafe fn(&mut [f64], &mut [u64], &[f32], f64, f64);

/// The full round's bodies chosen for this CPU, once.
struct Bodies {
    offer: OfferBody,
    add_parts: AddPartsBody,
}

/// Every set of bodies this CPU runs, the portable one first and the
/// fastest last.
fn runnable() -> Vec<Bodies> {
    let mut all = vec![Bodies { offer: offer_plain, add_parts: add_parts_plain }];
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
            all.push(Bodies { offer: simd::offer_avx512, add_parts: simd::add_parts_avx512 });
        }
    }
    all
}

static BODIES: std::sync::LazyLock<Bodies> =
    std::sync::LazyLock::new(|| runnable().pop().expect("the portable bodies run anywhere"));

/// The portable bodies compiled for AVX-512: the same operations in the
/// same order, so the same lists and the same bits.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// [`super::offer_plain`] with the masks of whole stretches from two
    /// 16-lane comparisons (ordered, like `>`: the same bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn offer_avx512(similarity: &mut [f32], id: &mut [u32], scores: &[f32], ids: &[usize]) {
        super::offer_with(similarity, id, scores, ids, |scores, least| {
            if scores.len() < super::OFFERED {
                return super::mask_above(scores, least);
            }
            let least = _mm512_set1_ps(least);
            // SAFETY: the stretch holds 32 scores; the CPU was checked.
            unsafe {
                let low = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(scores.as_ptr()), least);
                let high = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(scores.as_ptr().add(16)), least);
                u32::from(low) | (u32::from(high) << 16)
            }
        })
    }

    /// [`super::add_parts_plain`] for AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn add_parts_avx512(sum: &mut [f64], count: &mut [u64], scores: &[f32], c: f64, error: f64) {
        super::add_parts_plain(sum, count, scores, c, error)
    }
}

/// Puts `(s, j)` in place of the heap's least and sifts it down.
fn replace_least(similarity: &mut [f32], id: &mut [u32], s: f32, j: u32) {
    let mut at = 0;
    loop {
        let mut low = at;
        let mut value = s;
        for child in [2 * at + 1, 2 * at + 2] {
            if child < similarity.len() && similarity[child] < value {
                (low, value) = (child, similarity[child]);
            }
        }
        if low == at {
            break;
        }
        similarity[at] = similarity[low];
        id[at] = id[low];
        at = low;
    }
    similarity[at] = s;
    id[at] = j;
}

/// The greedy's state: each sample's best similarity to the selection, and,
/// after the full round, the lists that spare resolved samples a pass.
struct Coverage<'a> {
    features: ArrayView2<'a, f32>,
    best: Vec<f64>,
    /// The float32 product's error bound for one similarity.
    error: f64,
    /// How many candidates each sample lists in the full round.
    width: usize,
    /// Samples per tile of the full round.
    tile: usize,
    lists: Option<Lists>,
    resolved: Vec<bool>,
    /// The samples not resolved, in id order: each gain reads their rows.
    unresolved: Vec<usize>,
    /// Whether any sample has joined the selection.
    served: bool,
    /// Per candidate: how much its gain has surely fallen since its key
    /// was last set, from the listed similarities of the samples served
    /// better since.
    fallen: Vec<f64>,
    /// Similarities computed in float64 so far.
    exact: u64,
    /// Exact gains computed so far.
    gains: u64,
    /// Candidates estimated so far.
    estimated: u64,
    /// Every row's scales for 12-bit estimates; None: float32 ones.
    coded: Option<Scales>,
}

impl<'a> Coverage<'a> {
    /// The state before any pick; `coded`: estimate through 12-bit codes.
    fn new(features: ArrayView2<'a, f32>, width: usize, tile: usize, coded: bool) -> Self {
        let n = features.nrows();
        Coverage {
            features,
            best: vec![-1.0; n],
            error: f64::from(dot_error_bound(features.ncols())),
            width,
            tile,
            lists: None,
            resolved: vec![false; n],
            unresolved: (0..n).collect(),
            served: false,
            fallen: vec![0.0; n],
            exact: 0,
            gains: 0,
            estimated: 0,
            coded: coded.then(|| Scales::new(features)),
        }
    }

    /// The objective: `Σ_i (1 + c_i)`, in fixed chunks.
    fn objective(&self) -> f64 {
        let terms: Vec<f64> = self.best.iter().map(|c| 1.0 + c).collect();
        crate::chunks::sum(&terms)
    }

    /// The full round is due at the first estimate after a sample has been
    /// served: before that every gain is known from the closed form.
    fn wants_full_round(&self) -> bool {
        self.lists.is_none() && self.served
    }

    /// How many stale candidates are estimated together.
    fn batch(&self) -> usize {
        if self.coded.is_some() { CODED_BATCH } else { BATCH }
    }

    /// `visit(ids)` for the unresolved samples in runs of about
    /// [`TILE_ROWS`], in parallel; the results in run order.
    fn per_run<T: Send>(&self, visit: impl Fn(&[usize]) -> T + Sync) -> Vec<T> {
        self.unresolved.par_chunks(TILE_ROWS).map(&visit).collect()
    }

    /// The float32 scores of the samples `run` against `rows`: row `r` of
    /// the result belongs to `run[r]`.
    fn run_scores(&self, run: &[usize], rows: ArrayView2<f32>, packed: Option<&Packed>) -> RunScores {
        let (first, last) = (run[0], run[run.len() - 1]);
        // A product over the rows between costs less than copying the run
        // out while at least half of them are in it.
        if last - first < 2 * run.len() {
            let scores = scores(self.features.slice(s![first..=last, ..]), rows, packed);
            return RunScores { scores, first: Some(first) };
        }
        let mut gathered = Vec::with_capacity(run.len() * self.features.ncols());
        for &i in run {
            gathered.extend_from_slice(row(self.features, i));
        }
        let block = ArrayView2::from_shape((run.len(), self.features.ncols()), &gathered).expect("rows of the pool");
        RunScores { scores: scores(block, rows, packed), first: None }
    }

    /// Upper bounds on the gains of the candidates `ids`, from float32 or
    /// 12-bit estimates, a batch at a time.
    fn estimate(&mut self, ids: &[usize]) -> Vec<f64> {
        self.estimated += ids.len() as u64;
        ids.chunks(self.batch()).flat_map(|batch| self.estimate_batch(batch)).collect()
    }

    fn estimate_batch(&self, ids: &[usize]) -> Vec<f64> {
        let mut totals = Above::new(ids.len());
        for (b, &j) in ids.iter().enumerate() {
            self.listed_part(j, &mut totals, b);
        }
        if let Some(scales) = self.coded.as_ref().filter(|_| ids.len() >= FEW) {
            let unresolved = self.coded_part(ids, scales);
            return totals.bounds(self.error).iter().zip(unresolved).map(|(listed, part)| listed + part).collect();
        }
        let rows = self.features.select(Axis(0), ids);
        let packed = (ids.len() >= FEW).then(|| Packed::new(rows.view()));
        let runs = self.per_run(|run| {
            let scores = self.run_scores(run, rows.view(), packed.as_ref());
            Above::of(run.iter().enumerate().map(|(r, &i)| (self.best[i], scores.row(r, i))), self.error)
        });
        for run in runs {
            totals.add(&run);
        }
        totals.bounds(self.error)
    }

    /// Upper bounds on the unresolved samples' parts of the gains of `ids`
    /// from 12-bit codes, each run of rows coded once for all of them
    /// (in panels of [`codes12::PANEL`]): every similarity is
    /// bounded from above ([`Panel::upper`]), so only the sums' rounding is
    /// left to allow for.
    fn coded_part(&self, ids: &[usize], scales: &Scales) -> Vec<f64> {
        let mut columns = Block::default();
        let panels: Vec<Panel> = ids
            .chunks(codes12::PANEL)
            .map(|part| {
                columns.fill(self.features, part, scales);
                Panel::new(&columns)
            })
            .collect();
        let runs = self.per_run(|run| {
            let (mut block, mut dots) = (Block::default(), Vec::new());
            block.fill(self.features, run, scales);
            let mut sums = vec![0.0; ids.len()];
            for (panel, sums) in panels.iter().zip(sums.chunks_mut(codes12::PANEL)) {
                panel.dots(&block, &mut dots);
                for (r, &i) in run.iter().enumerate() {
                    panel.add_above(&block, r, &dots[r * codes12::PANEL..], self.best[i], sums);
                }
            }
            sums
        });
        // Summing n non-negative terms in float64 errs by under n · 2⁻⁵³
        // of the total: this margin covers pools of up to 3 · 10⁷ samples.
        (0..ids.len()).map(|b| runs.iter().map(|sums| sums[b]).sum::<f64>() * (1.0 + 4e-9)).collect()
    }

    /// Adds what the resolved samples listing `j` give its estimate to
    /// entry `b` of `totals`.
    fn listed_part(&self, j: usize, totals: &mut Above, b: usize) {
        if let Some(lists) = &self.lists {
            for (i, s) in lists.listers(j).filter(|&(i, _)| self.resolved[i]) {
                totals.offer(b, f64::from(s) - self.best[i], self.error);
            }
        }
    }

    /// Estimates every candidate in `ids` in one pass over the pool, and on
    /// the way lists each sample's most similar candidates: the pass that
    /// makes later gains cheap. Similarities are symmetric, so the pool is
    /// cut into tiles and each pair of tiles is multiplied once and read
    /// both ways: half the products of every sample against every
    /// candidate. The pairs run in [`rounds`], so each tile takes its
    /// partners' offers and sums in a fixed order, whatever the threads.
    fn full_round(&mut self, ids: &[usize]) -> Result<Vec<f64>> {
        let n = self.best.len();
        let width = self.width.min(ids.len()).max(1);
        let mut candidate = vec![false; n];
        for &j in ids {
            candidate[j] = true;
        }
        let mut tiles: Vec<Option<Tile>> = (0..n)
            .step_by(self.tile)
            .map(|start| Tile::new(start..(start + self.tile).min(n), width).map(Some))
            .collect::<Result<_>>()?;
        for round in rounds(tiles.len()) {
            let mut pairs: Vec<(Tile, Option<Tile>)> = round
                .iter()
                .map(|&(a, b)| {
                    let first = tiles[a].take().expect("a tile is in one pair per round");
                    (first, (a != b).then(|| tiles[b].take().expect("a tile is in one pair per round")))
                })
                .collect();
            pairs.par_iter_mut().for_each(|(first, second)| self.pair(first, second.as_mut(), &candidate));
            for tile in pairs.into_iter().flat_map(|(first, second)| std::iter::once(first).chain(second)) {
                let at = tile.range.start / self.tile;
                tiles[at] = Some(tile);
            }
        }
        let tiles: Vec<Tile> = tiles.into_iter().map(|t| t.expect("every tile is back")).collect();
        let estimates = ids.iter().map(|&j| tiles[j / self.tile].above.bound(j % self.tile, self.error)).collect();
        self.estimated += ids.len() as u64;
        self.lists = Some(self.gather(tiles.into_iter().map(|t| t.nearest).collect())?);
        self.resolve(0..n);
        Ok(estimates)
    }

    /// One pair of tiles in the full round: the product of `first`'s rows
    /// and `second`'s (`first`'s own when None), in strips of [`BATCH`]
    /// columns, each read as `first`'s samples against the strip's
    /// candidates and, turned around, as the strip's samples against
    /// `first`'s candidates.
    fn pair(&self, first: &mut Tile, mut second: Option<&mut Tile>, candidate: &[bool]) {
        let rows = self.features.slice(s![first.range.clone(), ..]);
        let columns = second.as_ref().map_or(first.range.clone(), |t| t.range.clone());
        let own = Offered::new(first.range.clone(), candidate);
        let (mut wide, mut turned, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        let coded_rows = self.coded.as_ref().map(|scales| {
            let mut block = Block::default();
            block.fill(self.features, &first.range.clone().collect::<Vec<_>>(), scales);
            (block, scales)
        });
        for start in columns.clone().step_by(BATCH) {
            let strip = start..(start + BATCH).min(columns.end);
            let stride = match &coded_rows {
                Some((block, scales)) => self.coded_scores(block, scales, strip.clone(), rows.nrows(), &mut wide),
                None => {
                    let packed = Packed::new(self.features.slice(s![strip.clone(), ..]));
                    packed.product_padded(rows, &mut wide);
                    packed.stride()
                }
            };
            let scores = |r: usize| &wide[r * stride..r * stride + strip.len()];
            let offered = Offered::new(strip.clone(), candidate);
            for r in 0..rows.nrows() {
                offered.offer(&mut first.nearest, r, scores(r), &mut kept);
            }
            let part = Above::of(
                self.best[first.range.clone()].iter().copied().zip((0..rows.nrows()).map(scores)),
                self.error,
            );
            let Some(second) = second.as_deref_mut() else {
                first.above.add_at(start - first.range.start, &part);
                continue;
            };
            second.above.add_at(start - second.range.start, &part);
            // Read the other way: the strip's samples against `first`'s candidates.
            turn(&wide, stride, strip.len(), &mut turned);
            let best = self.best[strip.clone()].iter().copied();
            first.above.add(&Above::of(best.zip(turned.chunks_exact(rows.nrows())), self.error));
            for (c, back) in turned.chunks_exact(rows.nrows()).enumerate() {
                own.offer(&mut second.nearest, start - second.range.start + c, back, &mut kept);
            }
        }
    }

    /// Upper bounds on the similarities of the rows coded in `block` to
    /// the samples `strip` (at most a panel of them), from 12-bit codes,
    /// into `wide` (a row of [`codes12::PANEL`] for each of the block's
    /// first `rows`); returns
    /// that stride. The full round reads them as it reads float32 scores:
    /// every use but one takes a score as an upper bound (plus the float32
    /// error, which only adds a margin), and that one ([`Coverage::record_fall`])
    /// allows for the codes' spread.
    fn coded_scores(
        &self,
        block: &Block,
        scales: &Scales,
        strip: Range<usize>,
        rows: usize,
        wide: &mut Vec<f32>,
    ) -> usize {
        let mut columns = Block::default();
        columns.fill(self.features, &strip.collect::<Vec<_>>(), scales);
        let panel = Panel::new(&columns);
        let mut dots = Vec::new();
        panel.dots(block, &mut dots);
        wide.resize(rows * codes12::PANEL, 0.0);
        for (r, out) in wide.chunks_exact_mut(codes12::PANEL).enumerate() {
            panel.upper32(block, r, &dots[r * codes12::PANEL..], out);
        }
        codes12::PANEL
    }

    /// The lists turned around: for each candidate, the samples listing it.
    fn gather(&self, runs: Vec<Nearest>) -> Result<Lists> {
        let n = self.best.len();
        let mut start = vec![0usize; n + 1];
        for nearest in &runs {
            for &j in nearest.id.iter().filter(|&&j| j != u32::MAX) {
                start[j as usize + 1] += 1;
            }
        }
        for j in 0..n {
            start[j + 1] += start[j];
        }
        let what = "facloc's candidate lists";
        let mut sample = filled(start[n], 0u32, what)?;
        let mut similarity = filled(start[n], 0f32, what)?;
        let mut next = start.clone();
        let mut beyond = Vec::with_capacity(n);
        for (r, nearest) in runs.iter().enumerate() {
            for (row, (ids, sims)) in
                nearest.id.chunks(nearest.width).zip(nearest.similarity.chunks(nearest.width)).enumerate()
            {
                let i = r * self.tile + row;
                for (&j, &s) in ids.iter().zip(sims).filter(|&(&j, _)| j != u32::MAX) {
                    let at = &mut next[j as usize];
                    (sample[*at], similarity[*at]) = (i as u32, s);
                    *at += 1;
                }
                beyond.push(f64::from(nearest.least(row)) + self.error);
            }
        }
        // Samples within each candidate's listers are in id order: the runs are.
        Ok(Lists { forward: runs, tile: self.tile, beyond, start, sample, similarity })
    }

    /// Marks the samples among `ids` whose coverage has reached their bound.
    fn resolve(&mut self, ids: impl Iterator<Item = usize>) {
        let Some(lists) = &self.lists else { return };
        let mut any = false;
        for i in ids {
            if !self.resolved[i] && self.best[i] >= lists.beyond[i] {
                self.resolved[i] = true;
                any = true;
            }
        }
        if any {
            let resolved = &self.resolved;
            self.unresolved.retain(|&i| !resolved[i]);
        }
    }

    /// The exact gain of candidate `j`: float64 similarities for every
    /// sample the float32 filter cannot rule out.
    fn exact_gain(&mut self, j: usize) -> f64 {
        let f = row(self.features, j);
        let (error, best) = (self.error, &self.best);
        let (mut gain, mut exact) = (0.0, 0u64);
        if let Some(lists) = &self.lists {
            for (i, _) in lists.listers(j).filter(|&(i, s)| self.resolved[i] && f64::from(s) + error > best[i]) {
                exact += 1;
                gain += (dot64(row(self.features, i), f) - best[i]).max(0.0);
            }
        }
        let runs = self.per_run(|run| {
            let (mut sum, mut exact) = (0.0, 0u64);
            for &i in run {
                let r = row(self.features, i);
                if f64::from(crate::linalg::dot(r, f)) + error > best[i] {
                    exact += 1;
                    sum += (dot64(r, f) - best[i]).max(0.0);
                }
            }
            (sum, exact)
        });
        for (sum, count) in runs {
            gain += sum;
            exact += count;
        }
        self.exact += exact;
        self.gains += 1;
        gain
    }

    /// Takes the samples `ids` into the selection.
    fn add(&mut self, ids: &[usize]) {
        if ids.is_empty() {
            return;
        }
        self.served = true;
        let error = self.error;
        // (sample, its coverage before) for every sample served better.
        let mut changed = Vec::new();
        if let Some(lists) = &self.lists {
            for &p in ids {
                for (i, s) in lists.listers(p) {
                    if self.resolved[i] && f64::from(s) + error > self.best[i] {
                        self.exact += 1;
                        let similarity = dot64(row(self.features, i), row(self.features, p));
                        if similarity > self.best[i] {
                            changed.push((i, self.best[i]));
                            self.best[i] = similarity;
                        }
                    }
                }
            }
        }
        let rows = self.features.select(Axis(0), ids);
        let packed = (ids.len() >= FEW).then(|| Packed::new(rows.view()));
        let updates = self.per_run(|run| {
            let scores = self.run_scores(run, rows.view(), packed.as_ref());
            let (mut improved, mut exact) = (Vec::new(), 0u64);
            for (r, &i) in run.iter().enumerate() {
                let mut best = self.best[i];
                for (o, &s) in scores.row(r, i).iter().enumerate() {
                    if f64::from(s) + error > best {
                        exact += 1;
                        best = best.max(dot64(row(self.features, i), row(rows.view(), o)));
                    }
                }
                if best > self.best[i] {
                    improved.push((i, best));
                }
            }
            (improved, exact)
        });
        for (improved, exact) in updates {
            self.exact += exact;
            for (i, best) in improved {
                changed.push((i, self.best[i]));
                self.best[i] = best;
            }
        }
        self.record_fall(&changed);
        self.resolve(changed.iter().map(|&(i, _)| i));
    }

    /// Adds to each listed candidate's fall what the samples `changed`
    /// (with their coverage before) surely took from its gain: sample `i`
    /// served better, from `c` to `c'`, takes `max(0, min(s, c') − c)` from
    /// a candidate at similarity `s`, at least that with `s` lowered by the
    /// float32 error.
    fn record_fall(&mut self, changed: &[(usize, f64)]) {
        let Some(lists) = &self.lists else { return };
        for &(i, before) in changed {
            let after = self.best[i];
            // A listed similarity is a float32 score, or with codes an upper bound.
            let below = self.error + self.coded.as_ref().map_or(0.0, |scales| scales.spread(i));
            for (j, s) in lists.listed(i) {
                let fall = (f64::from(s) - below).min(after) - before;
                if fall > 0.0 {
                    self.fallen[j] += fall;
                }
            }
        }
    }

    /// Stale candidate `c` with a new upper bound `high` on its gain at
    /// `stamp`; its fall starts again from zero.
    fn estimated(&mut self, c: Candidate, high: f64, stamp: u32) -> Candidate {
        self.fallen[c.id as usize] = 0.0;
        if high <= 0.0 {
            // Nothing can be gained: the gain is exactly 0.
            Candidate { key: 0.0, id: c.id, stamp, known: Known::Exact }
        } else {
            Candidate { key: high.min(c.key), id: c.id, stamp, known: Known::Estimated }
        }
    }

    /// Lowers every key in `heap` by its candidate's fall, which starts
    /// again from zero: between picks, when every key is stale.
    fn lower(&mut self, heap: &mut BinaryHeap<Candidate>) {
        let mut all = std::mem::take(heap).into_vec();
        for c in &mut all {
            let fallen = std::mem::take(&mut self.fallen[c.id as usize]);
            // The margin covers the rounding of the sums of falls.
            c.key = (c.key - fallen * (1.0 - 1e-9)).max(0.0);
        }
        *heap = all.into();
    }
}

/// Parts of float32 estimates, one per candidate: `Σ max(0, s − c)` over
/// samples, and how many had `s` above `c − error` (where the exact
/// similarity may differ). Kept as two arrays so a row of scores is taken
/// in a few vector instructions.
struct Above {
    sum: Vec<f64>,
    count: Vec<u64>,
}

impl Above {
    fn new(len: usize) -> Self {
        Above { sum: vec![0.0; len], count: vec![0; len] }
    }

    /// The parts over samples given as (coverage, scores against the
    /// candidates); there is at least one.
    fn of<'s>(mut samples: impl Iterator<Item = (f64, &'s [f32])>, error: f64) -> Self {
        let (c, scores) = samples.next().expect("a sample");
        let mut parts = Above::new(scores.len());
        for (c, scores) in std::iter::once((c, scores)).chain(samples) {
            // SAFETY: the body was chosen for this CPU.
            unsafe { (BODIES.add_parts)(&mut parts.sum, &mut parts.count, scores, c, error) };
        }
        parts
    }

    fn offer(&mut self, b: usize, above: f64, error: f64) {
        let (part, near) = Above::part(above, error);
        self.sum[b] += part;
        self.count[b] += near;
    }

    /// One sample's part, given by how far its float32 score is `above`
    /// its coverage: what it adds to the sum, and 1 if the exact similarity
    /// may be above the coverage (the score is within `error` below it, or
    /// higher), so the bound must allow for that error.
    #[inline(always)]
    fn part(above: f64, error: f64) -> (f64, u64) {
        (above.max(0.0), u64::from(above > -error))
    }

    fn add(&mut self, other: &Above) {
        self.add_at(0, other);
    }

    /// Adds `other`'s parts to entries `offset..` of these.
    fn add_at(&mut self, offset: usize, other: &Above) {
        self.sum[offset..].iter_mut().zip(&other.sum).for_each(|(a, b)| *a += b);
        self.count[offset..].iter_mut().zip(&other.count).for_each(|(a, b)| *a += b);
    }

    /// Upper bounds on the exact sums: `max(0, x − c)` moves by at most as
    /// much as `x` does.
    fn bounds(&self, error: f64) -> Vec<f64> {
        (0..self.sum.len()).map(|b| self.bound(b, error)).collect()
    }

    /// The bound of entry `b`.
    fn bound(&self, b: usize, error: f64) -> f64 {
        self.sum[b] + self.count[b] as f64 * error * 1.001
    }
}

/// The float32 scores of `block`'s rows against `rows`: one product for
/// many rows (`packed`, their packing), plain dot products for a few.
fn scores(block: ArrayView2<f32>, rows: ArrayView2<f32>, packed: Option<&Packed>) -> Scores {
    let cols = rows.nrows();
    match packed {
        Some(packed) => {
            let mut data = Vec::new();
            packed.product_padded(block, &mut data);
            Scores { data, stride: packed.stride(), cols }
        }
        None => {
            let data = (0..block.nrows())
                .flat_map(|r| (0..cols).map(move |o| crate::linalg::dot(row(block, r), row(rows, o))))
                .collect();
            Scores { data, stride: cols, cols }
        }
    }
}

/// A block of scores, one row per sample, `cols` per row at a `stride`
/// (the product's padding is never copied out).
struct Scores {
    data: Vec<f32>,
    stride: usize,
    cols: usize,
}

impl Scores {
    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.stride..r * self.stride + self.cols]
    }
}

/// Scores of a run of samples: over the rows from `first` on when
/// computed over a stretch of the pool, else over the run itself.
struct RunScores {
    scores: Scores,
    first: Option<usize>,
}

impl RunScores {
    /// The scores of sample `i`, the `r`-th of the run.
    fn row(&self, r: usize, i: usize) -> &[f32] {
        self.scores.row(self.first.map_or(r, |first| i - first))
    }
}

/// The exact greedy: `k` picks after `round` (labeled samples start in the
/// selection; taken ones are never picked). `on_pick(i, objective)` follows
/// the picks; the outcome's `losses` are the objective after each pick.
pub fn select(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    mut on_pick: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let run = greedy(features, k, round, &mut on_pick)?;
    let work = run.work();
    Ok(Outcome::new(run.picks, Vec::new(), run.objective, start.elapsed().as_secs_f64(), 0.0, work))
}

/// `--partitions`: the pool split by k-means into `parts` parts, each
/// given a share of the budget by its size ([`shares`]), and the exact
/// greedy run inside each part: an approximation (a sample is served only
/// within its part) for pools where the exact greedy is too slow. The
/// objective after each pick counts each sample as served within its part.
pub fn select_by_parts(
    features: &mut Array2<f32>,
    k: usize,
    parts: usize,
    round: &Round,
    rng: &mut rand::rngs::Xoshiro256PlusPlus,
    mut on_pick: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let part_of = kmeans::clusters_within(features, parts, PARTITION_STEPS, rng)?;
    let mut members = vec![Vec::new(); parts];
    for (i, &p) in part_of.iter().enumerate() {
        members[p].push(i);
    }
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let room: Vec<usize> = members.iter().map(|m| m.iter().filter(|&&i| !round.taken[i]).count()).collect();
    let allotted = shares(k, &sizes, &room);
    let mut is_labeled = vec![false; features.nrows()];
    for &i in &round.labeled {
        is_labeled[i] = true;
    }
    let mut part_objective = vec![0.0; parts];
    let (mut picks, mut objective, mut work) = (Vec::with_capacity(k), Vec::with_capacity(k), Work::default());
    for (p, ids) in members.iter().enumerate() {
        if allotted[p] == 0 {
            continue;
        }
        let local = features.select(Axis(0), ids);
        let local_round = Round {
            labeled: (0..ids.len()).filter(|&l| is_labeled[ids[l]]).collect(),
            taken: ids.iter().map(|&i| round.taken[i]).collect(),
        };
        let run = greedy(local.view(), allotted[p], &local_round, &mut |_, _| {})?;
        for (&pick, &value) in run.picks.iter().zip(&run.objective) {
            picks.push(members[p][pick]);
            part_objective[p] = value;
            objective.push(part_objective.iter().sum());
            on_pick(picks.len() - 1, objective[picks.len() - 1]);
        }
        work += run.work();
    }
    Ok(Outcome::new(picks, Vec::new(), objective, start.elapsed().as_secs_f64(), 0.0, work))
}

/// The budget `k` split over parts of `sizes` in proportion to their size:
/// each gets the floor of its exact share, then the remainder goes one at a
/// time to the part with the smallest allocation (ties: the larger exact
/// share, then the lower index); no part gets more than its `room`, the
/// excess going to parts with room, largest share first. Needs `k ≤ Σ room`.
pub fn shares(k: usize, sizes: &[usize], room: &[usize]) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    // Exact integer arithmetic: part p's share is k·size/n, as a floor and a remainder.
    let mut allotted: Vec<usize> = sizes.iter().map(|&s| (k as u128 * s as u128 / n.max(1) as u128) as usize).collect();
    let larger_share = |a: usize, b: usize| (k as u128 * sizes[a] as u128).cmp(&(k as u128 * sizes[b] as u128));
    let mut left = k - allotted.iter().sum::<usize>();
    while left > 0 {
        let p = (0..sizes.len())
            .filter(|&p| allotted[p] < room[p])
            .min_by(|&a, &b| allotted[a].cmp(&allotted[b]).then(larger_share(b, a)).then(a.cmp(&b)))
            .expect("the budget fits in the room");
        allotted[p] += 1;
        left -= 1;
    }
    // Over-full parts give their excess to parts with room, largest share first.
    let mut excess = 0;
    for (a, &r) in allotted.iter_mut().zip(room) {
        excess += a.saturating_sub(r);
        *a = (*a).min(r);
    }
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| larger_share(b, a).then(a.cmp(&b)));
    while excess > 0 {
        let p = *order.iter().find(|&&p| allotted[p] < room[p]).expect("the budget fits in the room");
        allotted[p] += 1;
        excess -= 1;
    }
    allotted
}

/// What the greedy did.
struct Run {
    picks: Vec<usize>,
    /// The objective after each pick.
    objective: Vec<f64>,
    /// Gains estimated in float32, and computed exactly.
    estimated: u64,
    gains: u64,
    /// Similarities computed in float64.
    exact: u64,
}

impl Run {
    /// The counters as the report names them: gains estimated or computed
    /// count as full scans, float64 similarities as rescores.
    fn work(&self) -> Work {
        Work { full_scans: self.estimated + self.gains, rescored: self.exact }
    }
}

fn greedy(features: ArrayView2<f32>, k: usize, round: &Round, on_pick: &mut impl FnMut(usize, f64)) -> Result<Run> {
    let coded = codes12::codes_are_fast() && features.nrows() >= CODED_FROM;
    greedy_listing(features, k, round, Listing { width: LISTED, tile: TILE_ROWS, coded }, on_pick)
}

/// How the greedy estimates: `width` candidates listed per sample,
/// full-round tiles of `tile` samples, and 12-bit codes or float32 (tests
/// vary all three).
struct Listing {
    width: usize,
    tile: usize,
    coded: bool,
}

/// [`greedy`] estimating as `listing` says.
fn greedy_listing(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    listing: Listing,
    on_pick: &mut impl FnMut(usize, f64),
) -> Result<Run> {
    let mut coverage = Coverage::new(features, listing.width, listing.tile, listing.coded);
    coverage.add(&round.labeled);
    let mut heap = initial_bounds(features, round);
    let mut picks = Vec::with_capacity(k);
    let mut objective = Vec::with_capacity(k);
    while picks.len() < k {
        let pick = next_pick(&mut heap, &mut coverage, picks.len() as u32)?;
        coverage.add(&[pick]);
        coverage.lower(&mut heap);
        picks.push(pick);
        objective.push(coverage.objective());
        on_pick(picks.len() - 1, objective[picks.len() - 1]);
    }
    Ok(Run { picks, objective, estimated: coverage.estimated, gains: coverage.gains, exact: coverage.exact })
}

/// Every candidate's gain before any pick, `Σ_i (1 + cos(f_i, f_j)) = n +
/// f_j · Σ_i f_i`: a bound on every later gain, with no n × n work.
fn initial_bounds(features: ArrayView2<f32>, round: &Round) -> BinaryHeap<Candidate> {
    let n = features.nrows();
    let mut total = vec![0.0f64; features.ncols()];
    for f in features.rows() {
        crate::linalg::add_scaled(&mut total, 1.0, f.as_slice().expect("contiguous rows"));
    }
    round
        .eligible()
        .into_par_iter()
        .map(|j| {
            let dot: f64 = row(features, j).iter().zip(&total).map(|(&a, &b)| f64::from(a) * b).sum();
            // Rounding of the sum over n samples, generously.
            let gain = (n as f64 + dot) * (1.0 + 1e-9) + 1e-9;
            Candidate { key: gain, id: j as u32, stamp: u32::MAX, known: Known::Stale }
        })
        .collect::<Vec<_>>()
        .into()
}

/// The pick at selection size `stamp`: makes the leading candidates'
/// gains known well enough that the best exact gain, and every candidate
/// that could tie with it (within [`TIE`]), is certain; the lowest id among
/// the ties wins.
fn next_pick(heap: &mut BinaryHeap<Candidate>, coverage: &mut Coverage, stamp: u32) -> Result<usize> {
    loop {
        let top = *heap.peek().expect("the budget fits in the candidates");
        if top.known(stamp) == Known::Stale && coverage.wants_full_round() {
            let mut all = std::mem::take(heap).into_vec();
            all.sort_by_key(|c| c.id);
            let ids: Vec<usize> = all.iter().map(|c| c.id as usize).collect();
            let estimates = coverage.full_round(&ids)?;
            for (c, high) in all.into_iter().zip(estimates) {
                heap.push(if c.known(stamp) == Known::Stale { coverage.estimated(c, high, stamp) } else { c });
            }
            continue;
        }
        let pending = match top.known(stamp) {
            Known::Stale => {
                let batch = coverage.batch();
                pop_while(heap, |c, taken| c.known(stamp) == Known::Stale && taken < batch)
            }
            Known::Estimated => vec![heap.pop().expect("peeked")],
            Known::Exact => {
                let n = coverage.best.len() as f64;
                let threshold = top.key - TIE * top.key.abs().max(1.0 / n);
                let leaders = pop_while(heap, |c, _| c.key >= threshold);
                if leaders.iter().all(|c| c.known(stamp) == Known::Exact) {
                    let chosen = leaders.iter().map(|c| c.id).min().expect("the top leads");
                    heap.extend(leaders.into_iter().filter(|c| c.id != chosen));
                    return Ok(chosen as usize);
                }
                leaders
            }
        };
        // Stale ones get estimates; estimated ones, exact gains.
        let mut stale = Vec::new();
        for c in pending {
            match c.known(stamp) {
                Known::Exact => heap.push(c),
                Known::Estimated => {
                    let key = coverage.exact_gain(c.id as usize);
                    heap.push(Candidate { key, id: c.id, stamp, known: Known::Exact });
                }
                Known::Stale => stale.push(c),
            }
        }
        let ids: Vec<usize> = stale.iter().map(|c| c.id as usize).collect();
        for (c, high) in stale.into_iter().zip(coverage.estimate(&ids)) {
            heap.push(coverage.estimated(c, high, stamp));
        }
    }
}

/// Pops the leading candidates while `take(candidate, popped so far)`.
fn pop_while(heap: &mut BinaryHeap<Candidate>, take: impl Fn(&Candidate, usize) -> bool) -> Vec<Candidate> {
    let mut popped = Vec::new();
    while let Some(c) = heap.peek() {
        if !take(c, popped.len()) {
            break;
        }
        popped.push(heap.pop().expect("peeked"));
    }
    popped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    /// The greedy written out literally in float64: every gain of every
    /// candidate at every step, ties within TIE to the lowest id.
    fn literal(f: &Array2<f32>, k: usize, round: &Round) -> Vec<usize> {
        let f = f.mapv(f64::from);
        let n = f.nrows();
        let sim = |i: usize, j: usize| f.row(i).dot(&f.row(j));
        let mut cur = vec![0.0f64; n];
        let serve = |cur: &mut Vec<f64>, j: usize| {
            for (i, c) in cur.iter_mut().enumerate() {
                *c = c.max(1.0 + sim(i, j));
            }
        };
        for &l in &round.labeled {
            serve(&mut cur, l);
        }
        let mut picks = Vec::new();
        while picks.len() < k {
            let gains: Vec<Option<f64>> = (0..n)
                .map(|j| {
                    (!round.taken[j] && !picks.contains(&j))
                        .then(|| (0..n).map(|i| (1.0 + sim(i, j) - cur[i]).max(0.0)).sum::<f64>())
                })
                .collect();
            let best = gains.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let threshold = best - TIE * best.abs().max(1.0 / n as f64);
            let j = (0..n).find(|&j| gains[j].is_some_and(|g| g >= threshold)).unwrap();
            serve(&mut cur, j);
            picks.push(j);
        }
        picks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn picks_equal_the_literal_greedy(
            n in 2usize..160, d in 1usize..12, k_frac in 0.0f64..0.6, grid in proptest::option::of(1i32..3),
            labeled_every in 0usize..9, excluded_every in 0usize..7, seed in 0u64..1000,
            width in proptest::sample::select(vec![1usize, 2, 5, LISTED]),
            tile in proptest::sample::select(vec![1usize, 7, 70, TILE_ROWS]), coded: bool,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let round = crate::testing::round_every(n, labeled_every, excluded_every);
            let left = round.eligible().len();
            prop_assume!(left > 0);
            let k = ((left as f64 * k_frac) as usize).clamp(1, left);
            let run = greedy_listing(f.view(), k, &round, Listing { width, tile, coded }, &mut |_, _| {}).unwrap();
            prop_assert_eq!(&run.picks, &literal(&f, k, &round));
            prop_assert!(run.objective.windows(2).all(|w| w[1] >= w[0] - 1e-9));
        }
    }

    proptest! {
        #[test]
        fn lists_keep_the_most_similar_and_nothing_left_out_is_above_the_least(
            scores in proptest::collection::vec(-4i8..4, 1..200), width in 1usize..9, batch in 1usize..40,
        ) {
            // Few distinct values: many ties.
            let scores: Vec<f32> = scores.iter().map(|&s| f32::from(s) / 4.0).collect();
            let ids: Vec<usize> = (0..scores.len()).collect();
            let mut nearest = Nearest::new(1, width).unwrap();
            for (scores, ids) in scores.chunks(batch).zip(ids.chunks(batch)) {
                nearest.offer(0, scores, ids);
            }
            // Every body this CPU runs keeps the portable one's list, ties and all.
            for bodies in runnable() {
                let mut other = Nearest::new(1, width).unwrap();
                for (scores, ids) in scores.chunks(batch).zip(ids.chunks(batch)) {
                    // SAFETY: the body runs on this CPU.
                    unsafe { (bodies.offer)(&mut other.similarity, &mut other.id, scores, ids) };
                }
                prop_assert_eq!(&nearest.id, &other.id);
                prop_assert_eq!(&nearest.similarity, &other.similarity);
            }
            let mut listed: Vec<(f32, u32)> =
                nearest.similarity.iter().copied().zip(nearest.id.iter().copied()).filter(|&(_, j)| j != u32::MAX).collect();
            prop_assert_eq!(listed.len(), width.min(scores.len()));
            for &(s, j) in &listed {
                prop_assert_eq!(s, scores[j as usize]);
            }
            let mut sorted = scores.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            listed.sort_by(|a, b| b.0.total_cmp(&a.0));
            let listed_scores: Vec<f32> = listed.iter().map(|&(s, _)| s).collect();
            prop_assert_eq!(&listed_scores[..], &sorted[..listed.len()]);
            let least = nearest.least(0);
            let off: Vec<usize> = ids.iter().copied().filter(|j| !listed.iter().any(|&(_, l)| l as usize == *j)).collect();
            prop_assert!(off.iter().all(|&j| scores[j] <= least));
        }
    }

    proptest! {
        #[test]
        fn every_body_sums_as_the_literal_loop_does(
            scores in proptest::collection::vec(-8i8..8, 1..100), c in -9i8..9, seed in 0u64..1000,
        ) {
            // Scores on a grid around the coverage: parts of zero, ties with
            // the coverage, and scores within the error below it.
            let error = 1.0 / 64.0;
            let scores: Vec<f32> = scores.iter().map(|&s| f32::from(s) / 8.0).collect();
            let c = f64::from(c) / 8.0 + error / 2.0 * (seed % 3) as f64;
            let start = |len: usize| (0..len).map(|b| (b as f64).sqrt() * 0.1).collect::<Vec<f64>>();
            let (sum, count) = (start(scores.len()), vec![3u64; scores.len()]);
            let mut written = (sum.clone(), count.clone());
            for (b, &s) in scores.iter().enumerate() {
                let above = f64::from(s) - c;
                written.0[b] += above.max(0.0);
                written.1[b] += u64::from(above > -error);
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for bodies in runnable() {
                let (mut sum, mut count) = (sum.clone(), count.clone());
                // SAFETY: the body runs on this CPU.
                unsafe { (bodies.add_parts)(&mut sum, &mut count, &scores, c, error) };
                prop_assert_eq!(bits(&sum), bits(&written.0));
                prop_assert_eq!(&count, &written.1);
            }
        }

        #[test]
        fn turn_transposes_the_leading_columns(rows in 1usize..40, cols in 1usize..9, spare in 0usize..3) {
            let stride = cols + spare;
            let wide: Vec<f32> = (0..rows * stride).map(|x| x as f32).collect();
            let mut out = vec![f32::NAN; 3];
            turn(&wide, stride, cols, &mut out);
            prop_assert_eq!(out.len(), rows * cols);
            for r in 0..rows {
                for c in 0..cols {
                    prop_assert_eq!(out[c * rows + r], wide[r * stride + c]);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_full_round_lists_the_most_similar_and_bounds_every_gain(
            n in 2usize..120, d in 1usize..10, tile in 1usize..40, width in 1usize..9,
            grid in proptest::option::of(1i32..3), excluded_every in 0usize..5, seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let round = crate::testing::round_every(n, 0, excluded_every);
            let ids: Vec<usize> = round.eligible().into_iter().filter(|&j| j != 0).collect();
            prop_assume!(!ids.is_empty());
            let mut coverage = Coverage::new(f.view(), width, tile, false);
            coverage.add(&[0]);
            let estimates = coverage.full_round(&ids).unwrap();
            // The product's bits: one fused chain per entry, in dimension order.
            let product = |i: usize, j: usize| (0..d).fold(0.0f32, |acc, k| f[[i, k]].mul_add(f[[j, k]], acc));
            let lists = coverage.lists.as_ref().unwrap();
            for i in 0..n {
                let listed: Vec<(usize, f32)> = lists.listed(i).collect();
                prop_assert_eq!(listed.len(), width.min(ids.len()));
                let least = listed.iter().map(|&(_, s)| s).fold(f32::INFINITY, f32::min);
                for &(j, s) in &listed {
                    prop_assert!(ids.contains(&j));
                    prop_assert_eq!(s.to_bits(), product(i, j).to_bits());
                }
                for &j in ids.iter().filter(|&&j| !listed.iter().any(|&(l, _)| l == j)) {
                    prop_assert!(product(i, j) <= least, "sample {} lists {:?} but not {}", i, listed, j);
                }
            }
            let f64s = f.mapv(f64::from);
            for (&j, &estimate) in ids.iter().zip(&estimates) {
                let gain: f64 = (0..n).map(|i| (f64s.row(i).dot(&f64s.row(j)) - coverage.best[i]).max(0.0)).sum();
                prop_assert!(estimate >= gain - 1e-9 && estimate <= gain + n as f64 * coverage.error * 2.0 + 1e-9,
                    "candidate {}: estimate {} against gain {}", j, estimate, gain);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_coded_full_round_lists_bounds_that_hold_both_ways(
            n in 2usize..120, d in 1usize..40, tile in 1usize..40, width in 1usize..9,
            grid in proptest::option::of(1i32..3), seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let ids: Vec<usize> = (1..n).collect();
            let mut coverage = Coverage::new(f.view(), width, tile, true);
            coverage.add(&[0]);
            let estimates = coverage.full_round(&ids).unwrap();
            let similarity = |i: usize, j: usize| dot64(f.row(i).as_slice().unwrap(), f.row(j).as_slice().unwrap());
            let (lists, scales) = (coverage.lists.as_ref().unwrap(), coverage.coded.as_ref().unwrap());
            for i in 0..n {
                let listed: Vec<(usize, f32)> = lists.listed(i).collect();
                prop_assert_eq!(listed.len(), width.min(ids.len()));
                // What `record_fall` takes a listed similarity to be at least.
                let below = coverage.error + scales.spread(i);
                for &(j, s) in &listed {
                    let (s, exact) = (f64::from(s), similarity(i, j));
                    prop_assert!(s >= exact && s - below <= exact, "sample {} lists {} at {} for {}", i, j, s, exact);
                }
                for &j in ids.iter().filter(|&&j| !listed.iter().any(|&(l, _)| l == j)) {
                    prop_assert!(similarity(i, j) <= lists.beyond[i], "sample {} leaves out {} above its bound", i, j);
                }
            }
            for (&j, &estimate) in ids.iter().zip(&estimates) {
                let gain: f64 = (0..n).map(|i| (similarity(i, j) - coverage.best[i]).max(0.0)).sum();
                prop_assert!(estimate >= gain - 1e-9, "candidate {}: estimate {} below the gain {}", j, estimate, gain);
            }
        }
    }

    #[test]
    fn the_first_pick_is_the_most_central_sample() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let f = unit_rows(500, 6, &mut rng, None);
        let run = greedy(f.view(), 3, &Round::first(500), &mut |_, _| {}).unwrap();
        assert_eq!(run.picks[..1], literal(&f, 1, &Round::first(500))[..]);
        // Picking everything covers everything: the objective is 2n.
        let all = greedy(f.view(), 500, &Round::first(500), &mut |_, _| {}).unwrap().objective;
        // Each sample then serves itself: 1 + |f_i|², and float32 unit rows are unit to 1e-7.
        assert!((all[499] - 1000.0).abs() < 1e-4, "{}", all[499]);
        assert!(run.objective[2] < all[499]);
    }

    #[test]
    fn shares_follow_sizes_floors_remainders_and_room() {
        // Exact shares 2, 1.2, 0.8: floors 2, 1, 0; the one left goes to the smallest allocation.
        assert_eq!(shares(4, &[5, 3, 2], &[5, 3, 2]), vec![2, 1, 1]);
        // Equal allocations: the larger share wins the remainder, then the lower index.
        assert_eq!(shares(3, &[4, 6, 4], &[4, 6, 4]), vec![1, 1, 1]);
        assert_eq!(shares(2, &[4, 4, 4], &[4, 4, 4]), vec![1, 1, 0]);
        // No room: the remainder goes elsewhere.
        assert_eq!(shares(3, &[10, 1], &[10, 0]), vec![3, 0]);
        // More than the room: the excess moves to parts with room, largest share first.
        assert_eq!(shares(10, &[10, 10, 5], &[1, 10, 5]), vec![1, 7, 2]);
        for (k, sizes) in [(7usize, vec![3usize, 9, 1, 20]), (50, vec![17, 1, 1, 1, 30])] {
            let got = shares(k, &sizes, &sizes);
            assert_eq!(got.iter().sum::<usize>(), k);
            assert!(got.iter().zip(&sizes).all(|(g, s)| g <= s));
        }
    }

    #[test]
    fn one_part_is_the_exact_greedy_and_parts_pick_within_their_room() {
        let f = crate::testing::clustered(400, 6, 5, 0.3, false, 2);
        let mut round = Round::first(400);
        round.labeled = vec![3, 77];
        for i in [3, 77, 10, 11, 12] {
            round.taken[i] = true;
        }
        let exact = greedy(f.view(), 25, &round, &mut |_, _| {}).unwrap();
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
        let one = select_by_parts(&mut f.clone(), 25, 1, &round, &mut rng, |_, _| {}).unwrap();
        assert_eq!(one.picks, exact.picks);
        let mut pool = f.clone();
        let parts = select_by_parts(&mut pool, 25, 5, &round, &mut rng, |_, _| {}).unwrap();
        assert_eq!(pool, f, "the pool is back in order");
        assert_eq!(parts.selected.len(), 25);
        assert!(parts.selected.windows(2).all(|w| w[0] < w[1]));
        assert!(parts.selected.iter().all(|&i| !round.taken[i]));
        // Within parts the objective can only be lower than the exact greedy's.
        assert!(parts.losses[24] <= exact.objective[24] + 1e-6);
    }
}
