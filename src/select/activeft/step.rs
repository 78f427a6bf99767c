//! One evaluation of the loss and gradient on the pruned path, reading each
//! batch sample's features once.
//!
//! Samples are visited grouped by the point that won them last iteration.
//! Almost all keep that winner, so the visit can add the sample's share of
//! the gradient straight into that point's accumulator, which stays in cache.
//! The few whose winner changed, or that need a full scan, are added
//! afterwards, in sample order. Each point's sum therefore has a fixed order
//! (kept samples by id, then newcomers by id) whatever the thread count.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::assign::Pruned;
use super::loss::{Batch, PointTerm, Points, SampleLoss, finish_gradient, group_by_point};
use crate::linalg::add_scaled;

/// Samples per parallel work item for the newcomers' terms.
const SAMPLE_CHUNK: usize = 256;

/// The loss and gradient at the current points.
pub struct Evaluation {
    pub loss: f64,
    pub gradient: Array2<f64>,
}

/// A sample not added during its group's visit: batch position, and its
/// new winner and similarity (None until a full scan decides them).
type Newcomer = (usize, Option<(usize, f32)>);

/// What the visit of one point's group produced.
struct Group {
    /// `−Σ σ_i f_i` over the samples that kept this point.
    acc: Vec<f64>,
    /// `Σ σ_i` over the same samples.
    weight: f64,
    /// The sum of their loss terms, in visit order.
    loss: f64,
    /// Candidates rescored (beyond the winners) in this group.
    rescored: u64,
    /// Members that moved to another point, or need a full scan.
    left: Vec<Newcomer>,
}

/// Loss and gradient for `batch`, with the assignment decided by `pruned`
/// (identical to the dense assignment), which it updates.
pub fn evaluate(
    pruned: &mut Pruned,
    features: ArrayView2<f32>,
    batch: &Batch,
    points: &Points,
    term: &PointTerm,
    objective: SampleLoss,
) -> Evaluation {
    let unit32 = points.unit32.view();
    let (k, dim) = unit32.dim();
    pruned.begin_iteration(unit32);
    let previous: Vec<usize> = (0..batch.len()).map(|i| pruned.last_winner(batch.id(i))).collect();
    let members = group_by_point(&previous, k);
    drop(previous);

    let visit = Visit { pruned, features, batch, points: unit32, term, objective };
    let mut groups: Vec<Group> =
        members.par_iter().enumerate().map(|(point, positions)| visit.group(point, positions)).collect();
    drop(members);

    // Everyone who left a group, in batch order; misses take their full scans in that order.
    let mut newcomers: Vec<Newcomer> = groups.iter_mut().flat_map(|g| std::mem::take(&mut g.left)).collect();
    newcomers.sort_unstable_by_key(|&(i, _)| i);
    pruned.rescored += groups.iter().map(|g| g.rescored).sum::<u64>();
    let misses: Vec<usize> = newcomers.iter().filter(|(_, found)| found.is_none()).map(|&(i, _)| i).collect();
    let mut scanned = pruned.rescan(features, batch, &misses, unit32).into_iter();
    for (_, found) in &mut newcomers {
        if found.is_none() {
            *found = scanned.next();
        }
    }
    let newcomer_loss = add_newcomers(&mut groups, features, batch, &newcomers, term, objective);

    let loss = groups.iter().map(|g| g.loss).sum::<f64>() + newcomer_loss;
    let scale = 1.0 / (objective.temperature() * batch.len() as f64);
    let mut gradient = Array2::<f64>::zeros((k, dim));
    gradient.axis_iter_mut(Axis(0)).into_par_iter().zip(groups).enumerate().for_each(|(point, (mut g, group))| {
        g.as_slice_mut().expect("gradient rows are contiguous").copy_from_slice(&group.acc);
        finish_gradient(g, group.weight, point, term, points, scale);
    });
    Evaluation { loss: loss / batch.len() as f64, gradient }
}

/// What the visits of the groups share.
struct Visit<'a> {
    pruned: &'a Pruned,
    features: ArrayView2<'a, f32>,
    batch: &'a Batch,
    points: ArrayView2<'a, f32>,
    term: &'a PointTerm,
    objective: SampleLoss,
}

impl Visit<'_> {
    /// Checks every sample of one group, adding to the group's sums those
    /// that keep `point`.
    fn group(&self, point: usize, positions: &[usize]) -> Group {
        let mut group =
            Group { acc: vec![0.0; self.points.ncols()], weight: 0.0, loss: 0.0, rescored: 0, left: Vec::new() };
        for &i in positions {
            let id = self.batch.id(i);
            match self.pruned.check(self.features, id, self.points) {
                Some((best, sim, rescored)) if best == point => {
                    group.rescored += u64::from(rescored);
                    let (loss, sigma) = self.objective.terms(self.term.log_s[point], f64::from(sim));
                    group.loss += loss;
                    group.weight += sigma;
                    add_scaled(&mut group.acc, -sigma, self.features.row(id).as_slice().expect("contiguous rows"));
                }
                Some((best, sim, rescored)) => {
                    group.rescored += u64::from(rescored);
                    group.left.push((i, Some((best, sim))));
                }
                None => group.left.push((i, None)),
            }
        }
        group
    }
}

/// Adds the samples not added during the visits (their winner changed, or
/// a full scan found it) to their point's sums, in batch order; returns the
/// sum of their loss terms.
fn add_newcomers(
    groups: &mut [Group],
    features: ArrayView2<f32>,
    batch: &Batch,
    newcomers: &[Newcomer],
    term: &PointTerm,
    objective: SampleLoss,
) -> f64 {
    let settled = |&(i, found): &Newcomer| {
        let (point, sim) = found.expect("every newcomer was decided");
        let (loss, sigma) = objective.terms(term.log_s[point], f64::from(sim));
        (i, point, loss, sigma)
    };
    let terms: Vec<(usize, usize, f64, f64)> = newcomers.par_iter().with_min_len(SAMPLE_CHUNK).map(settled).collect();
    let mut by_point: Vec<Vec<(usize, f64)>> = vec![Vec::new(); groups.len()];
    for &(i, point, _, sigma) in &terms {
        by_point[point].push((i, sigma));
    }
    groups.par_iter_mut().zip(by_point).for_each(|(group, arrivals)| {
        for (i, sigma) in arrivals {
            group.weight += sigma;
            add_scaled(&mut group.acc, -sigma, features.row(batch.id(i)).as_slice().expect("contiguous rows"));
        }
    });
    terms.iter().map(|t| t.2).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::activeft::assign::dense;
    use crate::select::activeft::loss::{loss_and_gradient, point_term};
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    /// The fused step against the dense assignment plus the generic loss and
    /// gradient, along a random walk of the points.
    fn agrees_with_dense(n: usize, k: usize, d: usize, t: f64, batch: Option<usize>, seed: u64) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let unit = |rows: usize, rng: &mut Xoshiro256PlusPlus| {
            let raw = Array2::from_shape_fn((rows, d), |_| rng.random_range(-1.0..1.0));
            crate::linalg::normalize_rows(&raw).0
        };
        let features = unit(n, &mut rng).mapv(|x| x as f32);
        let mut raw = unit(k, &mut rng) * 1.3;
        let objective = SampleLoss::new(t, 0.8);
        let mut pruned = Pruned::new(n, k, d);
        for _ in 0..10 {
            let batch = match batch {
                Some(b) => Batch::Subset(rand::seq::index::sample(&mut rng, n, b).into_vec()),
                None => Batch::All(n),
            };
            let points = Points::new(&raw);
            let term = point_term(points.unit32.view(), t);
            let fast = evaluate(&mut pruned, features.view(), &batch, &points, &term, objective);
            let assignment = dense(features.view(), &batch, points.unit32.view());
            let (loss, gradient) = loss_and_gradient(features.view(), &batch, &assignment, &term, &points, t, 0.8);
            let winners: Vec<usize> = (0..batch.len()).map(|i| pruned.last_winner(batch.id(i))).collect();
            assert_eq!(winners, assignment.point);
            assert!((fast.loss - loss).abs() <= 1e-12 * loss.abs(), "{} vs {loss}", fast.loss);
            let scale = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            let worst = (&fast.gradient - &gradient).iter().fold(0.0f64, |m, g| m.max(g.abs()));
            assert!(worst <= 1e-9 * scale, "gradient differs by {worst} (scale {scale})");
            raw -= &(gradient * 0.3);
            raw.mapv_inplace(|x| x + rng.random_range(-0.01..0.01));
        }
    }

    #[test]
    fn fused_step_equals_dense_assignment_loss_and_gradient() {
        agrees_with_dense(2000, 30, 12, 0.07, None, 1);
        agrees_with_dense(1500, 80, 6, 0.005, None, 2);
        agrees_with_dense(1200, 20, 10, 0.1, Some(500), 3);
        agrees_with_dense(300, 1, 5, 0.07, None, 4);
    }
}
