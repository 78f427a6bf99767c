//! Adam with PyTorch's semantics, and the learning-rate schedules.

use ndarray::{Array2, Zip};

use super::params::Scheduler;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;
/// The floor of the cosine schedule (PyTorch's `eta_min` in the reference).
const COSINE_MIN_LR: f64 = 1e-6;

/// Adam state for one parameter matrix (`torch.optim.Adam`, no weight decay).
pub struct Adam {
    m: Array2<f64>,
    v: Array2<f64>,
    steps: i32,
}

impl Adam {
    pub fn new(shape: (usize, usize)) -> Self {
        Adam { m: Array2::zeros(shape), v: Array2::zeros(shape), steps: 0 }
    }

    /// One update of `params` against `grad` with learning rate `lr`.
    pub fn step(&mut self, params: &mut Array2<f64>, grad: &Array2<f64>, lr: f64) {
        self.steps += 1;
        let bias1 = 1.0 - BETA1.powi(self.steps);
        let bias2_sqrt = (1.0 - BETA2.powi(self.steps)).sqrt();
        let step_size = lr / bias1;
        Zip::from(params).and(&mut self.m).and(&mut self.v).and(grad).for_each(|p, m, v, &g| {
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= step_size * *m / (v.sqrt() / bias2_sqrt + EPS);
        });
    }
}

/// The learning rate of step `i` (from 0) of `total`.
pub fn learning_rate(scheduler: Scheduler, lr: f64, i: usize, total: usize) -> f64 {
    match scheduler {
        Scheduler::Constant => lr,
        Scheduler::Cosine => {
            let phase = std::f64::consts::PI * i as f64 / total as f64;
            COSINE_MIN_LR + (lr - COSINE_MIN_LR) * (1.0 + phase.cos()) / 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn adam_matches_a_hand_computed_run() {
        // Two steps on one parameter, worked out by hand from the PyTorch
        // update rule: m1 = 0.05, v1 = 0.00025, m̂1 = 0.5, v̂1 = 0.25, so
        // p1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8): the first step moves by lr
        // whatever the gradient's size, up to eps;
        // m2 = 0.9*0.05 + 0.1*(-1) = -0.055, v2 = 0.999*0.00025 + 0.001 = 0.00124975,
        // m̂2 = -0.055/0.19 = -0.289473..., v̂2 = 0.00124975/0.001999 = 0.625187...
        let mut p = array![[1.0]];
        let mut adam = Adam::new((1, 1));
        adam.step(&mut p, &array![[0.5]], 0.1);
        let p1 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8);
        assert_abs_diff_eq!(p[[0, 0]], p1, epsilon = 1e-15);
        adam.step(&mut p, &array![[-1.0]], 0.1);
        let m_hat = -0.055 / 0.19;
        let v_hat = 0.00124975 / 0.001999;
        assert_abs_diff_eq!(p[[0, 0]], p1 - 0.1 * m_hat / (f64::sqrt(v_hat) + 1e-8), epsilon = 1e-12);
        assert_abs_diff_eq!(p[[0, 0]], 0.9366104, epsilon = 1e-6);
    }

    #[test]
    fn zero_gradients_leave_parameters_alone() {
        let mut p = array![[0.3, -0.2]];
        let mut adam = Adam::new((1, 2));
        adam.step(&mut p, &Array2::zeros((1, 2)), 0.1);
        assert_eq!(p, array![[0.3, -0.2]]);
    }

    #[test]
    fn cosine_schedule_runs_from_lr_to_its_floor() {
        let lr = |i| learning_rate(Scheduler::Cosine, 0.002, i, 200);
        assert_abs_diff_eq!(lr(0), 0.002, epsilon = 1e-15);
        assert_abs_diff_eq!(lr(100), (0.002 + 1e-6) / 2.0, epsilon = 1e-15);
        assert_abs_diff_eq!(lr(200), 1e-6, epsilon = 1e-15);
        assert!((1..200).all(|i| lr(i) < lr(i - 1)));
        assert_eq!(learning_rate(Scheduler::Constant, 0.002, 150, 200), 0.002);
    }
}
