//! ActiveFT (Xie et al., CVPR 2023): optimise `budget` points on the unit
//! sphere so they match the pool's distribution while staying apart, then map
//! each point to its nearest untaken sample.
//!
//! - `params`: the settings and their validation;
//! - `loss`: the objective and its gradient; `point_term`: its point-point part;
//! - `assign`: each sample's nearest point, dense (the oracle) and pruned by
//!   bounds (`checkpoint`: snapshots of the points for those bounds);
//! - `step`: the pruned path's one-pass loss and gradient; `layout`: the
//!   pool's order in memory;
//! - `optim`: Adam and the learning-rate schedules;
//! - `init`: where the points start;
//! - `mapping`: from points back to samples.

pub mod assign;
mod checkpoint;
mod errors;
pub mod init;
pub mod layout;
pub mod loss;
pub mod mapping;
pub mod optim;
pub mod params;
mod point_term;
pub mod step;

use std::time::Instant;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

pub use errors::ParamError;
pub use params::{ActiveFtParams, Init, Scheduler, ValidParams};

use loss::{Batch, Points};

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The selected sample ids, ascending.
    pub selected: Vec<usize>,
    /// The sample ids the points started at, in point order.
    pub init: Vec<usize>,
    /// The loss before each iteration's update.
    pub losses: Vec<f64>,
    /// Seconds spent optimising (including initialisation) and mapping.
    pub optimize_seconds: f64,
    pub map_seconds: f64,
    /// How much work the pruned assignment needed.
    pub work: Work,
}

/// Counts of the pruned assignment's work over a run, beyond the one
/// winner score per sample and iteration that any method needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Work {
    /// Samples scanned against every point (all of them in the first iteration).
    pub full_scans: u64,
    /// Candidate scores recomputed because their bound reached the winner's.
    pub rescored: u64,
}

/// How each iteration finds the samples' nearest points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A full n × k product every iteration: simple, slow, the oracle.
    Dense,
    /// Candidate lists and bounds (same results), on a pool grouped in memory.
    Pruned,
}

/// Re-group the pool in memory once this share of samples is out of place.
const REGROUP_DISORDER: f64 = 0.05;

/// Runs ActiveFT on unit-norm `features`. `on_iteration(i, loss)` is called
/// after every iteration, for progress reporting. The rows are reordered in
/// memory while it runs and are back in their original order when it returns.
pub fn select(features: &mut Array2<f32>, params: &ValidParams, on_iteration: impl FnMut(usize, f64)) -> Outcome {
    select_with(features, params, Engine::Pruned, on_iteration)
}

/// [`select`] with a chosen engine; the engines give the same selection.
pub fn select_with(
    features: &mut Array2<f32>,
    params: &ValidParams,
    engine: Engine,
    mut on_iteration: impl FnMut(usize, f64),
) -> Outcome {
    let start = Instant::now();
    let (n, dim) = features.dim();
    // Independent streams, so changing the batch size never changes the init.
    let mut init_rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let mut batch_rng = Xoshiro256PlusPlus::seed_from_u64(params.seed ^ 0x9E37_79B9_7F4A_7C15);
    let init_ids = match &params.init {
        Init::Random => init::random(n, params.budget, &mut init_rng),
        Init::Fps => init::farthest_point(features.view(), params.budget, &mut init_rng),
        Init::Indices(ids) => ids.clone(),
    };
    let mut raw: Array2<f64> = features.select(Axis(0), &init_ids).mapv(f64::from);
    let mut adam = optim::Adam::new(raw.dim());
    let mut pruned = assign::Pruned::new(n, params.budget, dim);
    let mut layout = layout::Layout::identity(n);
    let objective = loss::SampleLoss::new(params.temperature, params.balance);
    let mut losses = Vec::with_capacity(params.iterations);
    for i in 0..params.iterations {
        // Batches are drawn as sample ids, so they do not depend on the layout.
        let batch = match params.effective_batch(n) {
            None => Batch::All(n),
            Some(b) => {
                Batch::Subset(init::random(n, b, &mut batch_rng).into_iter().map(|id| layout.position(id)).collect())
            }
        };
        let points = Points::new(&raw);
        let term = loss::point_term(points.unit32.view(), params.temperature);
        let (loss, gradient) = match engine {
            Engine::Dense => {
                let assignment = assign::dense(features.view(), &batch, points.unit32.view());
                loss::loss_and_gradient(
                    features.view(),
                    &batch,
                    &assignment,
                    &term,
                    &points,
                    params.temperature,
                    params.balance,
                )
            }
            Engine::Pruned => {
                let evaluation = step::evaluate(&mut pruned, features.view(), &batch, &points, &term, objective);
                let winners = pruned.winners();
                if layout::disorder(&winners) as f64 > REGROUP_DISORDER * n as f64 {
                    let from = layout::grouped_order(&winners, params.budget);
                    layout.rearrange(features, &from);
                    pruned.rearrange(&from);
                }
                (evaluation.loss, evaluation.gradient)
            }
        };
        losses.push(loss);
        on_iteration(i, loss);
        let lr = optim::learning_rate(params.scheduler, params.lr, i, params.iterations);
        adam.step(&mut raw, &gradient, lr);
    }
    pruned.rearrange(&layout.restore(features));
    let optimize_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let points = Points::new(&raw);
    let work;
    let mut selected = match engine {
        Engine::Dense => {
            work = Work::default();
            mapping::greedy_map(features.view(), points.unit32.view())
        }
        Engine::Pruned => {
            // Fresh bounds for the final points, then the bound-based mapping.
            pruned.assign(features.view(), &Batch::All(n), points.unit32.view());
            work = Work { full_scans: pruned.full_scans, rescored: pruned.rescored };
            mapping::greedy_map_pruned(features.view(), points.unit32.view(), pruned)
        }
    };
    selected.sort_unstable();
    Outcome { selected, init: init_ids, losses, optimize_seconds, map_seconds: start.elapsed().as_secs_f64(), work }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::RngExt;

    fn pool(n: usize, d: usize, clusters: usize, grid: bool, seed: u64) -> Array2<f32> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let centres = Array2::from_shape_fn((clusters, d), |_| rng.random_range(-1.0..1.0f64));
        let raw = Array2::from_shape_fn((n, d), |(i, j)| {
            let v = centres[[i % clusters, j]] + rng.random_range(-0.4..0.4);
            // On a coarse grid, duplicates and exact ties are common.
            if grid { (v * 2.0).round() + 0.5 } else { v }
        });
        crate::linalg::normalize_rows(&raw).0.mapv(|x| x as f32)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn pruned_engine_equals_dense_engine(
            n in 30usize..600, d in 2usize..20, clusters in 1usize..12, budget_frac in 0.02f64..0.3,
            low_t in proptest::bool::ANY, grid in proptest::bool::ANY, batch in proptest::bool::ANY, seed in 0u64..500,
        ) {
            let features = pool(n, d, clusters, grid, seed);
            let mut params = ActiveFtParams::new(((n as f64 * budget_frac) as usize).max(1));
            params.iterations = 25;
            params.temperature = if low_t { 0.005 } else { 0.07 };
            params.batch_size = batch.then_some(n / 2);
            params.seed = seed;
            let params = params.check(n).unwrap();
            let mut a = features.clone();
            let mut b = features.clone();
            let dense = select_with(&mut a, &params, Engine::Dense, |_, _| {});
            let pruned = select_with(&mut b, &params, Engine::Pruned, |_, _| {});
            prop_assert_eq!(&dense.selected, &pruned.selected);
            for (x, y) in dense.losses.iter().zip(&pruned.losses) {
                prop_assert!((x - y).abs() <= 1e-5, "{} vs {}", x, y);
            }
            // The pool is back in its original order.
            prop_assert_eq!(&b, &features);
        }
    }
}
