//! The exact nearest-point engine: for a pool of unit features and a set of
//! unit points that move a little at a time, which point is nearest to each
//! sample, and, at the end, which untaken sample each point takes.
//!
//! Every method that needs nearest points goes through here (ActiveFT's
//! iterations, k-means' Lloyd steps, eval's coverage), so this is where
//! exactness is guaranteed, once:
//!
//! - `dense`: the oracle, a full product and [`crate::linalg::dot`] for every decision;
//! - `bounds`: per-sample candidate points and upper bounds (`Pruned`), which
//!   give the dense answer without an n × k product per iteration;
//! - `scan`: full scans of samples against every point, in tiles;
//! - `sweeps`: a full scan's passes over one sample's row of bounds;
//! - `snapshot`: snapshots of the points, for the bound on the non-candidates;
//! - `layout`: the pool's order in memory, grouped by nearest point;
//! - `visit`: one pass over a batch, each sample with its exact winner;
//! - `mapping`: points to untaken samples, greedily in point order.
//!
//! Points never need to be told apart: a point that does not move (a fixed
//! point, such as an already labeled sample) simply never loosens a bound.
//! Only the mapping distinguishes them: it maps the first `count` points and
//! leaves the rest alone.

mod bounds;
mod layout;
mod mapping;
mod scan;
mod snapshot;
mod spread;
mod sweeps;
mod visit;

use ndarray::{Array2, ArrayView2};

use crate::error::Result;
use crate::linalg::{refined_best, score_tolerance};
use bounds::Pruned;
use layout::Layout;
pub use spread::map_spread;

/// The samples an iteration looks at: the whole pool or some of it.
#[derive(Debug, Clone)]
pub enum Batch {
    All(usize),
    /// Sample ids (or, inside the engine, positions), in the order drawn.
    Subset(Vec<usize>),
}

impl Batch {
    /// How many samples it holds.
    pub fn size(&self) -> usize {
        match self {
            Batch::All(n) => *n,
            Batch::Subset(ids) => ids.len(),
        }
    }

    /// The entry at batch position `i`.
    pub fn id(&self, i: usize) -> usize {
        match self {
            Batch::All(_) => i,
            Batch::Subset(ids) => ids[i],
        }
    }
}

/// Each batch sample's nearest point and its similarity `f_i·ĉ_{p_i}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub point: Vec<usize>,
    pub similarity: Vec<f64>,
}

/// How much the pruned engine computed beyond one winner score per sample
/// and iteration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Work {
    /// Samples scanned against every point (all of them in the first iteration).
    pub full_scans: u64,
    /// Candidate scores recomputed because their bound reached the winner's.
    pub rescored: u64,
}

impl std::ops::AddAssign for Work {
    fn add_assign(&mut self, other: Work) {
        self.full_scans += other.full_scans;
        self.rescored += other.rescored;
    }
}

/// How the engine finds nearest points; both give the same answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A full n × k product every call: simple, slow, the oracle.
    Dense,
    /// Candidate lists and bounds, on a pool grouped in memory.
    Pruned,
}

/// Re-group the pool in memory once this share of samples is out of place.
const REGROUP_DISORDER: f64 = 0.05;

/// The engine over one pool. It may reorder the pool's rows in memory while
/// it works; they are back in file order when it is dropped or mapped.
pub struct Engine<'a> {
    features: &'a mut Array2<f32>,
    pruned: Option<Pruned>,
    layout: Layout,
}

impl<'a> Engine<'a> {
    /// An engine for `k` points over `features` (unit rows).
    pub fn new(features: &'a mut Array2<f32>, k: usize, mode: Mode) -> Result<Self> {
        let (n, dim) = features.dim();
        let pruned = match mode {
            Mode::Dense => None,
            Mode::Pruned => Some(Pruned::new(n, k, dim)?),
        };
        Ok(Engine { features, pruned, layout: Layout::identity(n) })
    }

    /// The pool's rows, in file order.
    pub fn features(&mut self) -> ArrayView2<'_, f32> {
        self.restore();
        self.features.view()
    }

    /// Every sample's nearest point, in sample order.
    pub fn assign(&mut self, points: ArrayView2<f32>) -> Assignment {
        self.restore();
        let all = Batch::All(self.features.nrows());
        match &mut self.pruned {
            None => dense(self.features.view(), &all, points),
            Some(pruned) => pruned.assign(self.features.view(), &all, points),
        }
    }

    /// Visits every sample of `batch` (sample ids) once, with its exact
    /// nearest point and similarity: `add(&mut sums[p], p, row, similarity)`.
    /// Returns `sums`, one per point, started by `new(p)`. Each point's
    /// samples arrive in a fixed order whatever the thread count: in the
    /// dense mode by batch position; in the pruned mode, those that kept
    /// their nearest point first, then the others by batch position.
    pub fn visit<S: Send>(
        &mut self,
        batch: &Batch,
        points: ArrayView2<f32>,
        new: impl Fn(usize) -> S + Sync,
        add: impl Fn(&mut S, usize, &[f32], f32) + Sync,
    ) -> Vec<S> {
        let positions = match batch {
            Batch::All(n) => Batch::All(*n),
            Batch::Subset(ids) => Batch::Subset(ids.iter().map(|&id| self.layout.position(id)).collect()),
        };
        let Some(pruned) = &mut self.pruned else {
            return visit::dense(self.features.view(), &positions, points, new, add);
        };
        let sums = visit::pruned(pruned, self.features.view(), &positions, points, new, add);
        let winners = pruned.winners();
        if layout::disorder(&winners) as f64 > REGROUP_DISORDER * self.features.nrows() as f64 {
            let from = layout::grouped_order(&winners, points.nrows());
            self.layout.rearrange(self.features, &from);
            pruned.rearrange(&from);
        }
        sums
    }

    /// The work counters so far (zero in the dense mode).
    pub fn work(&self) -> Work {
        self.pruned.as_ref().map_or(Work::default(), Pruned::work)
    }

    /// Maps the first `count` points, in order, each to its most similar
    /// sample that is not yet taken (ties: the lowest id); `taken` marks the
    /// samples no point may take. The other points take no sample. Returns
    /// the picks in point order and the work counters of the whole run.
    pub fn map(mut self, points: ArrayView2<f32>, count: usize, taken: Vec<bool>) -> (Vec<usize>, Work) {
        self.restore();
        let features = self.features.view();
        let picks = match self.pruned.take() {
            None => mapping::greedy_map(features, points.slice(ndarray::s![..count, ..]), taken),
            Some(mut pruned) => {
                // Fresh bounds for these points, then the bound-based mapping.
                pruned.assign(features, &Batch::All(features.nrows()), points);
                let work = pruned.work();
                return (mapping::greedy_map_pruned(features, points, count, taken, pruned), work);
            }
        };
        (picks, Work::default())
    }

    /// Puts the rows back in file order, with everything kept per sample.
    fn restore(&mut self) {
        if self.layout.is_identity() {
            return;
        }
        let from = std::mem::replace(&mut self.layout, Layout::identity(0)).restore(self.features);
        self.layout = Layout::identity(self.features.nrows());
        if let Some(pruned) = &mut self.pruned {
            pruned.rearrange(&from);
        }
    }
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The nearest point of every batch sample, from a full product: the oracle.
pub fn dense(features: ArrayView2<f32>, batch: &Batch, points: ArrayView2<f32>) -> Assignment {
    let positions: Vec<usize> = (0..batch.size()).collect();
    let tolerance = score_tolerance(points.ncols());
    let (point, similarity) = scan::scan(features, batch, &positions, points, |scores, exact| {
        let (best, similarity) = refined_best(scores, tolerance, exact);
        (best, f64::from(similarity))
    })
    .into_iter()
    .unzip();
    Assignment { point, similarity }
}

/// Batch positions assigned to each point, ascending (a counting sort).
pub fn group_by_point(point_of: &[usize], k: usize) -> Vec<Vec<usize>> {
    // Counted first, so no list grows by reallocation on the way.
    let mut counts = vec![0; k];
    for &p in point_of {
        counts[p] += 1;
    }
    let mut members: Vec<Vec<usize>> = counts.into_iter().map(Vec::with_capacity).collect();
    for (i, &p) in point_of.iter().enumerate() {
        members[p].push(i);
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    #[test]
    fn the_pool_is_back_in_file_order_after_regrouping() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let original = unit_rows(3000, 8, &mut rng, None);
        let points = unit_rows(20, 8, &mut rng, None);
        let mut features = original.clone();
        {
            let mut engine = Engine::new(&mut features, 20, Mode::Pruned).unwrap();
            engine.visit(&Batch::All(3000), points.view(), |_| (), |_, _, _, _| {});
            assert!(!engine.layout.is_identity(), "random rows start out of group order");
            // An assignment is in sample order whatever the layout was.
            assert_eq!(engine.assign(points.view()), dense(original.view(), &Batch::All(3000), points.view()));
            engine.visit(&Batch::All(3000), points.view(), |_| (), |_, _, _, _| {});
        }
        assert_eq!(features, original);
    }

    #[test]
    fn visits_see_each_batch_sample_once_with_its_nearest_point() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let original = unit_rows(800, 6, &mut rng, Some(2));
        let points = unit_rows(15, 6, &mut rng, Some(2));
        let ids: Vec<usize> = (0..800).filter(|i| i % 3 != 1).rev().collect();
        let want = dense(original.view(), &Batch::Subset(ids.clone()), points.view());
        for mode in [Mode::Dense, Mode::Pruned] {
            let mut features = original.clone();
            let mut engine = Engine::new(&mut features, 15, mode).unwrap();
            for _ in 0..3 {
                let seen = engine.visit(
                    &Batch::Subset(ids.clone()),
                    points.view(),
                    |_| Vec::new(),
                    |seen: &mut Vec<(Vec<f32>, f32)>, _, row, sim| seen.push((row.to_vec(), sim)),
                );
                for (p, rows) in seen.iter().enumerate() {
                    let mut got: Vec<(Vec<f32>, f32)> = rows.clone();
                    let mut expected: Vec<(Vec<f32>, f32)> = (0..ids.len())
                        .filter(|&i| want.point[i] == p)
                        .map(|i| (original.row(ids[i]).to_vec(), want.similarity[i] as f32))
                        .collect();
                    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
                    assert_eq!(got, expected, "{mode:?}, point {p}");
                }
            }
        }
    }
}
