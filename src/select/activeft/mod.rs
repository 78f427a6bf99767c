//! ActiveFT (Xie et al., CVPR 2023): optimise `budget` points on the unit
//! sphere so they match the pool's distribution while staying apart, then map
//! each point to its nearest untaken sample.
//!
//! - `params`: the settings and their validation;
//! - `loss`: the objective, its gradient and the nearest-point assignment;
//! - `optim`: Adam and the learning-rate schedules;
//! - `init`: where the points start;
//! - `mapping`: from points back to samples.

mod errors;
pub mod init;
pub mod loss;
pub mod mapping;
pub mod optim;
pub mod params;

use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
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
}

/// Runs ActiveFT on unit-norm `features`. `on_iteration(i, loss)` is called
/// after every iteration, for progress reporting.
pub fn select(features: ArrayView2<f32>, params: &ValidParams, mut on_iteration: impl FnMut(usize, f64)) -> Outcome {
    let start = Instant::now();
    let n = features.nrows();
    // Independent streams, so changing the batch size never changes the init.
    let mut init_rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let mut batch_rng = Xoshiro256PlusPlus::seed_from_u64(params.seed ^ 0x9E37_79B9_7F4A_7C15);
    let init_ids = match &params.init {
        Init::Random => init::random(n, params.budget, &mut init_rng),
        Init::Fps => init::farthest_point(features, params.budget, &mut init_rng),
        Init::Indices(ids) => ids.clone(),
    };
    let mut raw: Array2<f64> = features.select(Axis(0), &init_ids).mapv(f64::from);
    let mut adam = optim::Adam::new(raw.dim());
    let mut losses = Vec::with_capacity(params.iterations);
    for i in 0..params.iterations {
        let batch = match params.effective_batch(n) {
            None => Batch::All(n),
            Some(b) => Batch::Subset(init::random(n, b, &mut batch_rng)),
        };
        let points = Points::new(&raw);
        let assignment = loss::assign_dense(features, &batch, points.unit32.view());
        let term = loss::point_term(points.unit32.view(), params.temperature);
        let (value, grad) =
            loss::loss_and_gradient(features, &batch, &assignment, &term, &points, params.temperature, params.balance);
        losses.push(value);
        on_iteration(i, value);
        let lr = optim::learning_rate(params.scheduler, params.lr, i, params.iterations);
        adam.step(&mut raw, &grad, lr);
    }
    let optimize_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let points = Points::new(&raw);
    let mut selected = mapping::greedy_map(features, points.unit32.view());
    selected.sort_unstable();
    Outcome { selected, init: init_ids, losses, optimize_seconds, map_seconds: start.elapsed().as_secs_f64() }
}
