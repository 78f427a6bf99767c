//! How good is a selection? Coverage of the pool, and with labels, what a
//! model trained on the selection alone would know.
//!
//! - `coverage`: each sample's cosine distance to its nearest selected sample;
//! - `probe`: a multinomial logistic regression trained on the selection;
//! - `plot`: the pool and the selection on their first two principal components.

pub mod plot;
pub mod probe;

use ndarray::ArrayView2;
use rayon::prelude::*;
use serde::Serialize;

use crate::chunks;
use crate::comm::{Comm, Part};
use crate::nearest::{self, Batch};

/// The metrics `eval --min/--max` may bound, as `--json` names them.
pub const METRICS: [&str; 9] = [
    "n",
    "k",
    "coverage_mean",
    "coverage_max",
    "classes_present",
    "classes_total",
    "label_entropy",
    "knn1_accuracy",
    "linear_accuracy",
];

/// The metrics that exist only with labels.
pub const NEEDS_LABELS: [&str; 5] =
    ["classes_present", "classes_total", "label_entropy", "knn1_accuracy", "linear_accuracy"];

/// Every metric of `activeft eval --json`. Fractions are in [0, 1]; a metric
/// that is undefined (no labels, or nothing to score) is null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Samples in the pool.
    pub n: usize,
    /// Samples selected.
    pub k: usize,
    /// Mean over the pool of 1 − cosine similarity to the nearest selected
    /// sample: the cost of moving every sample to its nearest selected one, an
    /// upper bound on the Earth Mover's distance between pool and selection.
    pub coverage_mean: f64,
    /// The largest such distance: how far the worst-served sample is.
    pub coverage_max: f64,
    /// Distinct labels among the selected samples.
    pub classes_present: Option<usize>,
    /// Distinct labels in the pool.
    pub classes_total: Option<usize>,
    /// Shannon entropy (bits) of the selected samples' labels.
    pub label_entropy: Option<f64>,
    /// Accuracy on the unselected samples of taking the label of the most
    /// similar selected sample.
    pub knn1_accuracy: Option<f64>,
    /// Accuracy on the unselected samples of a linear probe trained on the
    /// selected samples only.
    pub linear_accuracy: Option<f64>,
}

/// Computes every metric. `selected` must be distinct, in range and non-empty
/// (the CLI checks); `labels`, when given, has one label per sample.
pub fn evaluate(features: ArrayView2<f32>, selected: &[usize], labels: Option<&[i64]>) -> Metrics {
    let comm = Comm::single();
    evaluate_part(features, &Part::whole(&comm, features.nrows()), selected, labels)
}

/// [`evaluate`] over the ranks of `part`, `features` being this rank's
/// rows and `labels` the whole pool's: the selected rows go to every rank,
/// each rank measures its own samples, and the sums are added over the
/// ranks. The same metrics, up to the order of the additions.
pub fn evaluate_part(features: ArrayView2<f32>, part: &Part, selected: &[usize], labels: Option<&[i64]>) -> Metrics {
    let chosen_rows = part.rows(features, selected);
    let nearest = nearest::dense(features, &Batch::All(features.nrows()), chosen_rows.view());
    let mut is_selected = vec![false; features.nrows()];
    for l in selected.iter().filter_map(|&i| part.local(i)) {
        is_selected[l] = true;
    }
    // A selected sample is at distance 0 from itself, whatever rounding says.
    let distance: Vec<f64> = nearest
        .similarity
        .iter()
        .zip(&is_selected)
        .map(|(&sim, &chosen)| if chosen { 0.0 } else { (1.0 - sim).max(0.0) })
        .collect();
    let mut sums = [chunks::sum(&distance), 0.0, 0.0, 0.0];
    let local_max = distance.iter().cloned().fold(0.0, f64::max);
    let mut metrics = Metrics {
        n: part.n,
        k: selected.len(),
        coverage_mean: 0.0,
        coverage_max: part.comm.gather(&[local_max]).into_iter().fold(0.0, f64::max),
        classes_present: None,
        classes_total: None,
        label_entropy: None,
        knn1_accuracy: None,
        linear_accuracy: None,
    };
    if let Some(labels) = labels {
        let chosen: Vec<i64> = selected.iter().map(|&i| labels[i]).collect();
        metrics.classes_present = Some(distinct(&chosen));
        metrics.classes_total = Some(distinct(labels));
        metrics.label_entropy = Some(entropy_bits(&chosen));
        let probe = probe::Probe::train(chosen_rows.view(), &chosen, probe::L2);
        let unselected: Vec<usize> = (0..features.nrows()).filter(|&i| !is_selected[i]).collect();
        let label = |i: usize| labels[part.first + i];
        sums[1] = unselected.par_iter().filter(|&&i| chosen[nearest.point[i]] == label(i)).count() as f64;
        sums[2] = unselected
            .par_iter()
            .filter(|&&i| probe.predict(features.row(i).to_slice().expect("contiguous")) == label(i))
            .count() as f64;
        sums[3] = unselected.len() as f64;
    }
    part.comm.sum(&mut sums);
    metrics.coverage_mean = sums[0] / part.n as f64;
    if labels.is_some() && sums[3] > 0.0 {
        metrics.knn1_accuracy = Some(sums[1] / sums[3]);
        metrics.linear_accuracy = Some(sums[2] / sums[3]);
    }
    metrics
}

fn distinct(labels: &[i64]) -> usize {
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len()
}

/// Shannon entropy in bits of the empirical label distribution.
pub fn entropy_bits(labels: &[i64]) -> f64 {
    let mut sorted = labels.to_vec();
    sorted.sort_unstable();
    let total = labels.len() as f64;
    sorted
        .chunk_by(|a, b| a == b)
        .map(|run| {
            let p = run.len() as f64 / total;
            -p * p.log2()
        })
        .sum::<f64>()
        .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    fn unit(rows: Array2<f32>) -> Array2<f32> {
        let mut rows = rows;
        for mut r in rows.rows_mut() {
            let norm = r.dot(&r).sqrt();
            r /= norm;
        }
        rows
    }

    #[test]
    fn metrics_on_a_hand_computed_pool() {
        // Four samples on the unit circle: 0°, 90°, 180° and 60°.
        let h = 3f32.sqrt() / 2.0;
        let f = unit(array![[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.5, h]]);
        let labels = [7, 8, 9, 8];
        let m = evaluate(f.view(), &[0, 1], Some(&labels));
        // Distances: 0, 0, 1 − cos 90° = 1, 1 − cos 30° = 1 − √3/2.
        let want_mean = (1.0 + (1.0 - 3f64.sqrt() / 2.0)) / 4.0;
        assert!((m.coverage_mean - want_mean).abs() < 1e-6, "{}", m.coverage_mean);
        assert!((m.coverage_max - 1.0).abs() < 1e-6);
        assert_eq!((m.n, m.k, m.classes_present, m.classes_total), (4, 2, Some(2), Some(3)));
        assert_eq!(m.label_entropy, Some(1.0));
        // Sample 2 (180°): cos −1 to 0°, 0 to 90°, so its nearest is 1 (label 8): wrong;
        // sample 3 (60°) is nearest to 1 (90°, cos 30°), label 8: right.
        assert_eq!(m.knn1_accuracy, Some(0.5));
    }

    #[test]
    fn selecting_everything_covers_everything_and_leaves_nothing_to_score() {
        let f = unit(array![[1.0, 0.2], [0.3, 1.0], [1.0, 1.0], [1.0, 1.0]]);
        let m = evaluate(f.view(), &[0, 1, 2, 3], Some(&[1, 2, 3, 3]));
        assert_eq!((m.coverage_mean, m.coverage_max), (0.0, 0.0));
        assert_eq!((m.knn1_accuracy, m.linear_accuracy), (None, None));
        let json = serde_json::to_value(&m).unwrap();
        assert!(json["knn1_accuracy"].is_null() && json["linear_accuracy"].is_null());
    }

    #[test]
    fn the_metric_names_are_the_json_fields() {
        let f = unit(array![[1.0, 0.0], [0.0, 1.0]]);
        let json = serde_json::to_value(evaluate(f.view(), &[1], Some(&[0, 1]))).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = METRICS.to_vec();
        let mut keys = keys.clone();
        want.sort_unstable();
        keys.sort_unstable();
        assert_eq!(keys, want);
        let without = serde_json::to_value(evaluate(f.view(), &[1], None)).unwrap();
        for name in METRICS {
            assert_eq!(without[name].is_null(), NEEDS_LABELS.contains(&name), "{name}");
        }
    }

    #[test]
    fn entropy_in_bits() {
        assert_eq!(entropy_bits(&[1, 1, 1]), 0.0);
        assert!((entropy_bits(&[1, 2, 3, 4]) - 2.0).abs() < 1e-12);
        assert!((entropy_bits(&[1, 1, 2, 3]) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn no_labels_no_label_metrics() {
        let f = unit(array![[1.0, 0.0], [0.0, 1.0]]);
        let m = evaluate(f.view(), &[1], None);
        assert_eq!((m.classes_present, m.knn1_accuracy, m.linear_accuracy), (None, None, None));
        assert!((m.coverage_mean - 0.5).abs() < 1e-6);
    }
}
