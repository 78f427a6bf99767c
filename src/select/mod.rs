//! Selection methods. Each takes unit-norm features and returns sample ids.
//!
//! - `activeft`: the paper's method (the default);
//! - `random`: a seeded uniform sample;
//! - `fds`: farthest-point sampling (k-center greedy);
//! - `kmeans`: spherical k-means, centres mapped to their nearest samples.

pub mod activeft;
pub mod fds;
pub mod kmeans;

use std::time::Instant;

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use activeft::{Outcome, ValidParams, Work};

/// Which method picks the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ActiveFt,
    Random,
    Fds,
    KMeans,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::ActiveFt => "activeft",
            Method::Random => "random",
            Method::Fds => "fds",
            Method::KMeans => "kmeans",
        }
    }
}

/// Runs `method` with the budget and seed of `params` (the other settings
/// are ActiveFT's). `on_iteration(i, objective)` reports progress.
pub fn run(
    method: Method,
    features: &mut Array2<f32>,
    params: &ValidParams,
    on_iteration: impl FnMut(usize, f64),
) -> Outcome {
    let n = features.nrows();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let start = Instant::now();
    let mut map_seconds = 0.0;
    let (mut selected, init, losses) = match method {
        Method::ActiveFt => return activeft::select(features, params, on_iteration),
        Method::Random => (activeft::init::random(n, params.budget, &mut rng), Vec::new(), Vec::new()),
        Method::Fds => {
            let picks = fds::farthest_point(features.view(), params.budget, &mut rng);
            (picks.clone(), picks, Vec::new())
        }
        Method::KMeans => {
            let mut on_iteration = on_iteration;
            let run = kmeans::spherical_kmeans(features.view(), params.budget, &mut rng);
            run.objective.iter().enumerate().for_each(|(i, &o)| on_iteration(i, o));
            let map_start = Instant::now();
            let picks = activeft::mapping::greedy_map(features.view(), run.centres.view());
            map_seconds = map_start.elapsed().as_secs_f64();
            (picks, run.seeds, run.objective)
        }
    };
    selected.sort_unstable();
    let optimize_seconds = start.elapsed().as_secs_f64() - map_seconds;
    Outcome { selected, init, losses, optimize_seconds, map_seconds, work: Work::default() }
}
