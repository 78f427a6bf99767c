//! The greedy's state: every sample's coverage, the lists once the full
//! round has made them, and the gains' estimates and exact values.

use std::collections::BinaryHeap;

use ndarray::{ArrayView2, Axis, s};
use rayon::prelude::*;

use super::above::Above;
use super::lists::Lists;
use super::{BATCH, CODED_BATCH, Candidate, FEW, Known, TILE_ROWS};
use crate::linalg::codes12::{self, Block, Panel, Scales};
use crate::linalg::{Packed, dot_error_bound, dot64, row};

/// The greedy's state: each sample's best similarity to the selection, and,
/// after the full round, the lists that spare resolved samples a pass.
pub(super) struct Coverage<'a> {
    pub(super) features: ArrayView2<'a, f32>,
    pub(super) best: Vec<f64>,
    /// The float32 product's error bound for one similarity.
    pub(super) error: f64,
    /// How many candidates each sample lists in the full round.
    pub(super) width: usize,
    /// Samples per tile of the full round.
    pub(super) tile: usize,
    pub(super) lists: Option<Lists>,
    pub(super) resolved: Vec<bool>,
    /// The samples not resolved, in id order: each gain reads their rows.
    pub(super) unresolved: Vec<usize>,
    /// Whether any sample has joined the selection.
    pub(super) served: bool,
    /// Per candidate: how much its gain has surely fallen since its key
    /// was last set, from the listed similarities of the samples served
    /// better since.
    fallen: Vec<f64>,
    /// Similarities computed in float64 so far.
    pub(super) exact: u64,
    /// Exact gains computed so far.
    pub(super) gains: u64,
    /// Candidates estimated so far.
    pub(super) estimated: u64,
    /// Every row's scales for 12-bit estimates; None: float32 ones.
    pub(super) coded: Option<Scales>,
}

impl<'a> Coverage<'a> {
    /// The state before any pick; `coded`: estimate through 12-bit codes.
    pub(super) fn new(features: ArrayView2<'a, f32>, width: usize, tile: usize, coded: bool) -> Self {
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
    pub(super) fn objective(&self) -> f64 {
        let terms: Vec<f64> = self.best.iter().map(|c| 1.0 + c).collect();
        crate::chunks::sum(&terms)
    }

    /// The full round is due at the first estimate after a sample has been
    /// served: before that every gain is known from the closed form.
    pub(super) fn wants_full_round(&self) -> bool {
        self.lists.is_none() && self.served
    }

    /// How many stale candidates are estimated together.
    pub(super) fn batch(&self) -> usize {
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
    pub(super) fn estimate(&mut self, ids: &[usize]) -> Vec<f64> {
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

    /// Marks the samples among `ids` whose coverage has reached their bound.
    pub(super) fn resolve(&mut self, ids: impl Iterator<Item = usize>) {
        let Some(lists) = &self.lists else { return };
        let mut any = false;
        for i in ids {
            if !self.resolved[i] && self.best[i] >= lists.beyond(i) {
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
    pub(super) fn exact_gain(&mut self, j: usize) -> f64 {
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
    pub(super) fn add(&mut self, ids: &[usize]) {
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
    pub(super) fn estimated(&mut self, c: Candidate, high: f64, stamp: u32) -> Candidate {
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
    pub(super) fn lower(&mut self, heap: &mut BinaryHeap<Candidate>) {
        let mut all = std::mem::take(heap).into_vec();
        for c in &mut all {
            let fallen = std::mem::take(&mut self.fallen[c.id as usize]);
            // The margin covers the rounding of the sums of falls.
            c.key = (c.key - fallen * (1.0 - 1e-9)).max(0.0);
        }
        *heap = all.into();
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
