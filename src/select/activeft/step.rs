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

use super::assign::{Check, Pruned, full_scans};
use super::loss::{Assignment, Batch, PointTerm, Points, SampleLoss, finish_gradient, group_by_point, mean};
use crate::linalg::add_scaled;

/// The loss and gradient at the current points, with the assignment used.
pub struct Evaluation {
    pub assignment: Assignment,
    pub loss: f64,
    pub gradient: Array2<f64>,
}

/// A sample's loss term and its weight σ in the gradient.
type Terms = (f64, f64);

/// What the visit of one point's group produced.
struct Group {
    /// `−Σ σ_i f_i` over the samples that kept this point.
    acc: Vec<f64>,
    /// `Σ σ_i` over the same samples.
    weight: f64,
    /// Every member's check, by batch position, with its (loss, σ) terms
    /// when it kept this point and was added to the sums.
    checks: Vec<(usize, Check, Option<Terms>)>,
}

/// Loss and gradient for `batch`, with the assignment decided by `pruned`
/// (identical to the dense assignment).
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

    let visit = Visit { pruned, features, batch, points: unit32, term, objective };
    let mut groups: Vec<Group> =
        members.par_iter().enumerate().map(|(point, positions)| visit.group(point, positions)).collect();

    // Settle every check in batch order; misses take their full scans in that order.
    let mut by_position: Vec<Option<Check>> = (0..batch.len()).map(|_| None).collect();
    // The terms of the samples the visits already added to their point's sums.
    let mut added: Vec<Option<Terms>> = vec![None; batch.len()];
    for group in &mut groups {
        // Taken, not drained: each group's buffer is freed as it is emptied.
        for (i, check, terms) in std::mem::take(&mut group.checks) {
            by_position[i] = Some(check);
            added[i] = terms;
        }
    }
    let misses: Vec<usize> = (0..batch.len()).filter(|&i| matches!(by_position[i], Some(Check::Miss))).collect();
    let mut scans = full_scans(features, batch, &misses, unit32, pruned.width()).into_iter();
    let mut assignment =
        Assignment { point: Vec::with_capacity(batch.len()), similarity: Vec::with_capacity(batch.len()) };
    for (i, check) in by_position.into_iter().enumerate() {
        let (best, sim) = pruned.settle(batch.id(i), check.expect("every position was checked"), &mut scans);
        assignment.point.push(best);
        assignment.similarity.push(f64::from(sim));
    }

    let terms: Vec<Terms> = (0..batch.len())
        .into_par_iter()
        .map(|i| added[i].unwrap_or_else(|| objective.terms(term.log_s[assignment.point[i]], assignment.similarity[i])))
        .collect();
    add_newcomers(&mut groups, features, batch, &added, &assignment, &terms);

    let losses: Vec<f64> = terms.iter().map(|t| t.0).collect();
    let scale = 1.0 / (objective.temperature() * batch.len() as f64);
    let mut gradient = Array2::<f64>::zeros((k, dim));
    gradient.axis_iter_mut(Axis(0)).into_par_iter().zip(groups).enumerate().for_each(|(point, (mut g, group))| {
        g.as_slice_mut().expect("gradient rows are contiguous").copy_from_slice(&group.acc);
        finish_gradient(g, group.weight, point, term, points, scale);
    });
    Evaluation { assignment, loss: mean(&losses), gradient }
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
            Group { acc: vec![0.0; self.points.ncols()], weight: 0.0, checks: Vec::with_capacity(positions.len()) };
        for &i in positions {
            let id = self.batch.id(i);
            let check = self.pruned.check(self.features, id, self.points);
            let mut added = None;
            if let Check::Decided(best, sim, ..) = check
                && best == point
            {
                let terms = self.objective.terms(self.term.log_s[point], f64::from(sim));
                group.weight += terms.1;
                add_scaled(
                    &mut group.acc,
                    -terms.1,
                    self.features.row(id).as_slice().expect("features are contiguous"),
                );
                added = Some(terms);
            }
            group.checks.push((i, check, added));
        }
        group
    }
}

/// Adds the samples not added during the visits (their winner changed, or
/// a full scan found it) to their point's sums, in batch order.
fn add_newcomers(
    groups: &mut [Group],
    features: ArrayView2<f32>,
    batch: &Batch,
    added: &[Option<Terms>],
    assignment: &Assignment,
    terms: &[Terms],
) {
    let mut newcomers: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    for (i, &point) in assignment.point.iter().enumerate() {
        if added[i].is_none() {
            newcomers[point].push(i);
        }
    }
    groups.par_iter_mut().zip(newcomers).for_each(|(group, positions)| {
        for i in positions {
            let sigma = terms[i].1;
            group.weight += sigma;
            add_scaled(&mut group.acc, -sigma, features.row(batch.id(i)).as_slice().expect("features are contiguous"));
        }
    });
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
            assert_eq!(fast.assignment, assignment);
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
