//! The linear probe: multinomial logistic regression with an L2 penalty on
//! the weights (not the biases), trained on the selected samples only.
//!
//! Minimises `mean_i CE(softmax(W x_i + b), y_i) + (λ/2)|W|²` by Nesterov's
//! accelerated gradient with adaptive restart. For unit `x` the gradient is
//! Lipschitz with constant at most `1 + λ` (softmax curvature ≤ 1/2 per unit
//! of `|x|² + 1`), so the step `1/(1 + λ)` needs no line search.

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// The L2 weight λ.
pub const L2: f64 = 1e-3;
const MAX_STEPS: usize = 3000;
/// Stop when the gradient's largest entry is below this.
const TOLERANCE: f64 = 1e-7;

/// A trained probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The class labels, ascending; row `c` of `weights` scores `classes[c]`.
    pub classes: Vec<i64>,
    pub weights: Array2<f64>,
    pub biases: Array1<f64>,
}

impl Probe {
    /// Trains on the rows of `x` (unit vectors) with labels `y`.
    pub fn train(x: ArrayView2<f32>, y: &[i64], lambda: f64) -> Probe {
        let mut classes = y.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let x = x.mapv(f64::from);
        let target: Vec<usize> = y.iter().map(|l| classes.binary_search(l).expect("a seen label")).collect();
        let (c, d) = (classes.len(), x.ncols());
        let mut params = (Array2::<f64>::zeros((c, d)), Array1::<f64>::zeros(c));
        if c > 1 {
            params = accelerated_descent(&x, &target, c, lambda);
        }
        Probe { classes, weights: params.0, biases: params.1 }
    }

    /// The predicted label of one sample (ties: the lowest class).
    pub fn predict(&self, x: &[f32]) -> i64 {
        let mut best = (0, f64::NEG_INFINITY);
        for (c, w) in self.weights.rows().into_iter().enumerate() {
            let score = self.biases[c] + w.iter().zip(x).map(|(w, &v)| w * f64::from(v)).sum::<f64>();
            if score > best.1 {
                best = (c, score);
            }
        }
        self.classes[best.0]
    }
}

type Params = (Array2<f64>, Array1<f64>);

/// The objective's gradient with respect to the weights and biases.
fn gradient(x: &Array2<f64>, target: &[usize], (w, b): &Params, lambda: f64) -> Params {
    let m = x.nrows() as f64;
    let mut p = x.dot(&w.t()) + b; // logits, m × c
    for (mut row, &t) in p.rows_mut().into_iter().zip(target) {
        let max = row.fold(f64::NEG_INFINITY, |a, &v| a.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
        row[t] -= 1.0; // softmax − one-hot
    }
    let gw = p.t().dot(x) / m + w * lambda;
    let gb = p.sum_axis(Axis(0)) / m;
    (gw, gb)
}

fn accelerated_descent(x: &Array2<f64>, target: &[usize], c: usize, lambda: f64) -> Params {
    let step = 1.0 / (1.0 + lambda);
    let zero = || (Array2::<f64>::zeros((c, x.ncols())), Array1::<f64>::zeros(c));
    let (mut current, mut ahead) = (zero(), zero());
    let mut momentum = 1.0f64;
    for _ in 0..MAX_STEPS {
        let (gw, gb) = gradient(x, target, &ahead, lambda);
        let largest = gw.iter().chain(gb.iter()).fold(0.0f64, |a, g| a.max(g.abs()));
        if largest < TOLERANCE {
            return ahead;
        }
        let next = (&ahead.0 - &(gw * step), &ahead.1 - &(gb * step));
        let next_momentum = (1.0 + (1.0 + 4.0 * momentum * momentum).sqrt()) / 2.0;
        let beta = (momentum - 1.0) / next_momentum;
        // Restart when the step goes against the momentum (gradient restart).
        let along = (&next.0 - &current.0).iter().zip((&ahead.0 - &next.0).iter()).map(|(a, b)| a * b).sum::<f64>();
        if along > 0.0 {
            momentum = 1.0;
            ahead = next.clone();
        } else {
            ahead = (&next.0 + &((&next.0 - &current.0) * beta), &next.1 + &((&next.1 - &current.1) * beta));
            momentum = next_momentum;
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn two_classes_match_the_hand_solved_optimum() {
        // x = (1, 0) labelled 3 and (−1, 0) labelled 5. By symmetry the
        // optimum has equal biases and weights w_3 = (w, 0) = −w_5, so the
        // objective is log(1 + e^(−2w)) + λw², stationary where
        // λ w (1 + e^(2w)) = 1. Solve that by bisection.
        let lambda = 0.05;
        let (mut lo, mut hi) = (0.0f64, 10.0f64);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if lambda * mid * (1.0 + (2.0 * mid).exp()) < 1.0 { lo = mid } else { hi = mid }
        }
        let x = array![[1.0f32, 0.0], [-1.0, 0.0]];
        let probe = Probe::train(x.view(), &[3, 5], lambda);
        assert_eq!(probe.classes, vec![3, 5]);
        assert!((probe.weights[[0, 0]] - lo).abs() < 1e-5, "{} vs {lo}", probe.weights[[0, 0]]);
        assert!((probe.weights[[1, 0]] + lo).abs() < 1e-5);
        assert!(probe.weights[[0, 1]].abs() < 1e-9 && (probe.biases[0] - probe.biases[1]).abs() < 1e-6);
        assert_eq!(probe.predict(&[0.9, 0.1]), 3);
        assert_eq!(probe.predict(&[-0.8, 0.6]), 5);
    }

    #[test]
    fn separates_three_clusters_and_handles_a_single_class() {
        let x = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0], [-0.9, -0.1]];
        let probe = Probe::train(x.view(), &[0, 0, 1, 1, 2, 2], L2);
        assert_eq!([probe.predict(&[0.95, 0.0]), probe.predict(&[0.0, 0.95]), probe.predict(&[-0.95, 0.0])], [0, 1, 2]);
        let single = Probe::train(x.view(), &[4; 6], L2);
        assert_eq!(single.predict(&[0.3, 0.3]), 4);
    }
}
