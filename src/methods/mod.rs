//! Selection methods. Each takes unit-norm features and returns sample ids.
//!
//! - `activeft`: the paper's method (the default);
//! - `bilaf`: ActiveFT's picks as class centres, then samples near the
//!   boundaries between those classes;
//! - `random`: a seeded uniform sample;
//! - `fds`: farthest-point sampling (k-center greedy);
//! - `kmeans`: spherical k-means, centres mapped to their nearest samples;
//! - `facloc`: facility location, the exact greedy on `eval`'s coverage;
//! - `typiclust`: the most typical sample of the least-covered k-means clusters;
//! - `probcover`: the samples whose δ-balls cover the most of the pool.
//!
//! A new method goes in a file (or folder) of its own here, with a variant
//! in [`Method`] and a line in [`run`]; nearest points come from
//! [`crate::nearest`].

pub mod activeft;
pub mod bilaf;
pub mod facloc;
pub mod fds;
pub mod kmeans;
pub mod probcover;
pub mod typiclust;

use std::time::Instant;

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::comm::Part;
use crate::error::Result;
use crate::nearest::{Mode, Work};
use activeft::ValidParams;

/// Which method picks the samples, with the settings only it uses.
#[derive(Debug, Clone)]
pub enum Method {
    ActiveFt(ValidParams),
    /// BiLAF, with ActiveFT's settings for its core samples (their count is
    /// the params' budget).
    BiLaf(ValidParams),
    Random,
    Fds,
    KMeans,
    /// Facility location; with `Some(p)`, by `p` k-means parts.
    FacLoc(Option<usize>),
    /// TypiClust with this many clusters.
    TypiClust(usize),
    /// ProbCover with this radius, or the one purity over this many classes picks.
    ProbCover {
        delta: Option<f64>,
        purity_classes: Option<usize>,
    },
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::ActiveFt(_) => "activeft",
            Method::BiLaf(_) => "bilaf",
            Method::Random => "random",
            Method::Fds => "fds",
            Method::KMeans => "kmeans",
            Method::FacLoc(_) => "facloc",
            Method::TypiClust(_) => "typiclust",
            Method::ProbCover { .. } => "probcover",
        }
    }
}

/// What came before this round: the samples already labeled (in the order
/// given) and which samples may not be picked (labeled or excluded). Every
/// sample still counts as part of the pool's distribution.
#[derive(Debug, Clone)]
pub struct Round {
    pub labeled: Vec<usize>,
    pub taken: Vec<bool>,
}

impl Round {
    /// A first round over `n` samples: nothing labeled, nothing excluded.
    pub fn first(n: usize) -> Self {
        Round { labeled: Vec::new(), taken: vec![false; n] }
    }

    /// The samples that may be picked, ascending.
    pub fn eligible(&self) -> Vec<usize> {
        (0..self.taken.len()).filter(|&i| !self.taken[i]).collect()
    }

    /// How many samples may be picked.
    pub fn left(&self) -> usize {
        self.taken.iter().filter(|&&taken| !taken).count()
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The selected sample ids, ascending.
    pub selected: Vec<usize>,
    /// The same ids in the order the method chose them (ActiveFT and
    /// k-means: point order of the mapping; fds and random: pick order).
    pub picks: Vec<usize>,
    /// The sample ids the method started from (ActiveFT's initial points,
    /// k-means' seeds, farthest-point sampling's picks in order).
    pub init: Vec<usize>,
    /// The objective per iteration (ActiveFT's loss, k-means' mean distance).
    pub losses: Vec<f64>,
    /// Seconds spent optimising (including initialisation) and mapping.
    pub optimize_seconds: f64,
    pub map_seconds: f64,
    /// How much the nearest-point engine computed.
    pub work: Work,
    /// ProbCover's graph.
    pub graph: Option<Graph>,
}

/// The radius ProbCover used and how many edges its graph held.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Graph {
    /// The balls' radius δ.
    pub delta: f64,
    /// Directed edges, each sample's edge to itself included.
    pub edges: usize,
}

/// Runs `method` for `budget` new samples with `seed`, after `round`.
/// `on_iteration(i, objective)` reports progress. The rows of `features`
/// may be reordered in memory while it runs; they are back in file order
/// when it returns.
pub fn run(
    method: &Method,
    features: &mut Array2<f32>,
    budget: usize,
    seed: u64,
    round: &Round,
    on_iteration: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let start = Instant::now();
    let (picks, init, work) = match method {
        Method::ActiveFt(params) => return activeft::select(features, params, round, Mode::Pruned, on_iteration),
        Method::BiLaf(params) => return bilaf::select(features, params, budget, round, on_iteration),
        Method::KMeans => return kmeans::select(features, budget, round, &mut rng, on_iteration),
        Method::FacLoc(None) => return facloc::select(features.view(), budget, round, on_iteration),
        Method::TypiClust(clusters) => return typiclust::select(features, budget, *clusters, round, &mut rng),
        Method::ProbCover { delta, purity_classes } => {
            let (mut outcome, delta, edges) =
                probcover::select(features, budget, *delta, *purity_classes, round, &mut rng)?;
            outcome.graph = Some(Graph { delta, edges });
            return Ok(outcome);
        }
        Method::FacLoc(Some(parts)) => {
            return facloc::select_by_parts(features, budget, *parts, round, &mut rng, on_iteration);
        }
        Method::Random => {
            (activeft::init::random_from(&round.eligible(), budget, &mut rng), Vec::new(), Work::default())
        }
        Method::Fds => {
            let (picks, work) = fds::farthest_point(features.view(), budget, round, &mut rng);
            (picks.clone(), picks, work)
        }
    };
    let optimize_seconds = start.elapsed().as_secs_f64();
    Ok(Outcome::new(picks, init, Vec::new(), optimize_seconds, 0.0, work))
}

/// [`run`] with this rank's rows of a pool spread over MPI ranks; only
/// ActiveFT runs spread (the caller refuses the others).
pub fn run_part(
    method: &Method,
    features: &mut Array2<f32>,
    budget: usize,
    seed: u64,
    round: &Round,
    part: &Part,
    on_iteration: impl FnMut(usize, f64),
) -> Result<Outcome> {
    match method {
        _ if !part.is_spread() => run(method, features, budget, seed, round, on_iteration),
        Method::ActiveFt(params) => activeft::select_part(features, params, round, Mode::Pruned, part, on_iteration),
        other => Err(crate::error::Error::Internal(format!("--method {} cannot run across ranks", other.name()))),
    }
}

impl Outcome {
    /// An outcome from the picks in the order chosen.
    pub fn new(
        picks: Vec<usize>,
        init: Vec<usize>,
        losses: Vec<f64>,
        optimize_seconds: f64,
        map_seconds: f64,
        work: Work,
    ) -> Self {
        let mut selected = picks.clone();
        selected.sort_unstable();
        Outcome { selected, picks, init, losses, optimize_seconds, map_seconds, work, graph: None }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::round_every;

    #[test]
    fn left_counts_the_eligible_samples() {
        for (n, labeled_every, excluded_every) in [(0, 0, 0), (10, 0, 0), (10, 3, 0), (10, 3, 4), (7, 1, 0)] {
            let round = round_every(n, labeled_every, excluded_every);
            assert_eq!(round.left(), round.eligible().len(), "n {n}, every {labeled_every}/{excluded_every}");
        }
        let mut round = round_every(10, 3, 4);
        let before = round.left();
        let free = round.eligible()[0];
        round.taken[free] = true;
        assert_eq!(round.left(), before - 1);
    }
}
