//! Plain settings: what the command line asked for, free of clap types.
//! `cli` builds them; `run` reads them.

use std::path::PathBuf;

use crate::budget::Budget;
use crate::error::{Error, Result};
pub use crate::io::ids::Format;
use crate::methods::activeft::{ActiveFtParams, Init, Scheduler, ValidParams};

/// One invocation of the binary.
#[derive(Debug, Clone)]
pub enum Settings {
    Select(SelectSettings),
    Eval(EvalSettings),
}

/// The feature files and how to read them, for `select` and `eval` alike.
#[derive(Debug, Clone)]
pub struct Pool {
    /// `.npy` shards, concatenated in this order.
    pub features: Vec<PathBuf>,
    /// The last column of every shard is a label, not a feature.
    pub label_column: bool,
}

/// Everything `select` needs.
#[derive(Debug, Clone)]
pub struct SelectSettings {
    pub pool: Pool,
    pub method: MethodSettings,
    /// Settings every method shares.
    pub budget: Budget,
    pub seed: u64,
    pub threads: Option<usize>,
    pub output: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub quiet: bool,
    /// Samples already annotated (never picked again; every method takes them into account).
    pub labeled: Option<PathBuf>,
    /// Samples never to pick (they still count as part of the pool).
    pub exclude: Option<PathBuf>,
    /// One name per sample: the output lists names, and lists may use them.
    pub names: Option<PathBuf>,
    pub format: Format,
}

/// The method, with the settings only it uses.
#[derive(Debug, Clone)]
pub enum MethodSettings {
    ActiveFt(ActiveFtSettings),
    /// BiLAF: ActiveFT's settings for the core samples, and how many.
    BiLaf {
        stage_one: ActiveFtSettings,
        core: Option<Budget>,
    },
    Random,
    Fds,
    KMeans,
    /// Facility location, by this many k-means parts if given.
    FacLoc {
        partitions: Option<usize>,
    },
    /// TypiClust, with this many clusters if given.
    TypiClust {
        clusters: Option<usize>,
    },
    /// ProbCover with a radius, or the purity rule over pseudo-classes.
    ProbCover {
        delta: Option<f64>,
        purity_classes: Option<usize>,
    },
}

/// ActiveFT's own settings, unchecked until the pool's size is known.
#[derive(Debug, Clone)]
pub struct ActiveFtSettings {
    pub iterations: usize,
    pub lr: f64,
    pub temperature: f64,
    pub balance: f64,
    pub scheduler: Scheduler,
    pub init: InitChoice,
    pub batch_size: Option<usize>,
}

/// Where ActiveFT's points start; ids from a file are read before the pool.
#[derive(Debug, Clone)]
pub enum InitChoice {
    Random,
    Fps,
    Indices(PathBuf),
}

impl ActiveFtSettings {
    /// The validated parameters for a pool of `n`, given the shared budget
    /// and seed and the ids read from `--init-indices` (if any).
    pub fn params(&self, budget: usize, seed: u64, n: usize, init_ids: Option<Vec<usize>>) -> Result<ValidParams> {
        let init = match (&self.init, init_ids) {
            (InitChoice::Indices(_), Some(ids)) => Init::Indices(ids),
            (InitChoice::Fps, _) => Init::Fps,
            _ => Init::Random,
        };
        let params = ActiveFtParams {
            budget,
            iterations: self.iterations,
            lr: self.lr,
            temperature: self.temperature,
            balance: self.balance,
            scheduler: self.scheduler,
            init,
            batch_size: self.batch_size,
            seed,
        };
        params.check(n).map_err(|e| match (&self.init, e.flag()) {
            (InitChoice::Indices(path), "--init-indices") => Error::input(path, e.to_string()),
            (_, flag) => Error::usage(flag, e.to_string()),
        })
    }
}

/// Everything `eval` needs.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    pub pool: Pool,
    /// Selections judged together (their union).
    pub selections: Vec<PathBuf>,
    /// Samples already labeled, judged with the selections.
    pub labeled: Option<PathBuf>,
    pub names: Option<PathBuf>,
    pub labels: Option<PathBuf>,
    pub json: bool,
    pub plot: Option<PathBuf>,
    pub threads: Option<usize>,
    /// No progress on stderr.
    pub quiet: bool,
    /// Bounds the metrics must meet (exit 3 otherwise).
    pub limits: Vec<Limit>,
}

/// `--min METRIC=VALUE` or `--max METRIC=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub metric: String,
    pub value: f64,
    /// True for `--min` (the metric must be at least the value).
    pub at_least: bool,
}
