//! The `--report` file: everything needed to understand and repeat a run.

use serde::Serialize;

/// One run of `activeft select`, as written by `--report`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The selected sample ids, ascending: the same list as the selection output.
    pub selected: Vec<usize>,
    /// The same ids in the order the method chose them (ActiveFT, kmeans:
    /// point order of the mapping; fds, random: pick order).
    pub picks: Vec<usize>,
    /// The sample ids the points started at, in point order.
    pub init: Vec<usize>,
    /// The loss evaluated before each iteration's update, one per iteration.
    pub losses: Vec<f64>,
    /// Number of samples in the pool (all shards).
    pub n: usize,
    /// Feature dimension (after dropping a label column).
    pub dim: usize,
    /// Number of samples selected.
    pub budget: usize,
    /// Samples already labeled (`--labeled`), taken into account and not picked.
    pub labeled: usize,
    /// Samples excluded from picking (`--exclude`).
    pub excluded: usize,
    /// The names file, if the selection was written as names.
    pub names: Option<String>,
    /// The seed for initialisation and batches.
    pub seed: u64,
    /// The selection method.
    pub method: &'static str,
    /// The feature inputs, in the order they were concatenated: each one's
    /// path, size in bytes and BLAKE3 hash, computed as it was read.
    pub features: Vec<crate::io::source::Provenance>,
    /// Every setting the run used.
    pub params: ReportParams,
    /// Wall-clock time of each phase.
    pub seconds: Seconds,
    /// How much the nearest-point engine computed (see README).
    pub work: crate::nearest::Work,
    /// ProbCover's radius and edge count (null for the other methods).
    pub graph: Option<crate::methods::Graph>,
    /// The activeft version that wrote this report.
    pub version: &'static str,
}

/// The settings of the run, with defaults filled in. ActiveFT's own
/// settings are null for the other methods.
#[derive(Debug, Serialize)]
pub struct ReportParams {
    /// Optimisation steps.
    pub iterations: Option<usize>,
    /// Adam's (initial) learning rate.
    pub lr: Option<f64>,
    /// Temperature of the loss.
    pub temperature: Option<f64>,
    /// Weight of the diversity term.
    pub balance: Option<f64>,
    /// Learning-rate schedule: "none" or "cosine".
    pub scheduler: Option<&'static str>,
    /// Initialisation: "random", "fps" or "indices".
    pub init: Option<&'static str>,
    /// The file the initial sample ids came from, with "indices".
    pub init_indices: Option<String>,
    /// Samples per iteration; null when every iteration uses the whole pool.
    pub batch_size: Option<usize>,
    /// BiLAF's core samples (stage one's budget); null for other methods.
    pub core: Option<usize>,
    /// Whether the last column of the feature files was dropped as a label.
    pub label_column_dropped: bool,
    /// Worker threads (the result does not depend on it).
    pub threads: usize,
}

/// Seconds spent in each phase.
#[derive(Debug, Serialize)]
pub struct Seconds {
    /// Reading, checking and normalising the features.
    pub load: f64,
    /// Initialising and optimising the points.
    pub optimize: f64,
    /// Mapping the points to samples.
    pub map: f64,
    /// The whole run.
    pub total: f64,
}
