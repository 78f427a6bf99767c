//! Adam with PyTorch's semantics, and the learning-rate schedules.

use ndarray::Array2;
use rayon::prelude::*;

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

    /// One update of `params` against `grad` with learning rate `lr`,
    /// row by row in parallel (each entry on its own: the same bits on any
    /// number of threads).
    pub fn step(&mut self, params: &mut Array2<f64>, grad: &Array2<f64>, lr: f64) {
        assert_eq!(params.dim(), grad.dim());
        self.steps += 1;
        let factors = Factors::at(lr, self.steps);
        let cols = grad.ncols().max(1);
        let state = rows(params, cols).zip(rows(&mut self.m, cols)).zip(rows(&mut self.v, cols));
        let state = state.zip(grad.as_slice().expect("contiguous rows").par_chunks(cols));
        state.with_min_len(crate::chunks::FEW_ROWS).for_each(|(((p, m), v), g)| {
            // SAFETY: the body was chosen for this CPU.
            unsafe { (*UPDATE)(p, m, v, g, factors) }
        });
    }
}

/// The rows of `a`, `cols` entries each, in parallel.
fn rows(a: &mut Array2<f64>, cols: usize) -> rayon::slice::ChunksMut<'_, f64> {
    a.as_slice_mut().expect("contiguous rows").par_chunks_mut(cols)
}

/// A step's constants: `lr / (1 − β1^t)` and `√(1 − β2^t)`.
#[derive(Clone, Copy)]
struct Factors {
    step_size: f64,
    bias2_sqrt: f64,
}

impl Factors {
    /// The constants of step `t` (from 1) at learning rate `lr`.
    fn at(lr: f64, t: i32) -> Self {
        Factors { step_size: lr / (1.0 - BETA1.powi(t)), bias2_sqrt: (1.0 - BETA2.powi(t)).sqrt() }
    }
}

/// PyTorch's update of one row, entry by entry.
#[inline(always)]
fn update_plain(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], f: Factors) {
    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
        *m = BETA1 * *m + (1.0 - BETA1) * g;
        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
        *p -= f.step_size * *m / (v.sqrt() / f.bias2_sqrt + EPS);
    }
}

type UpdateBody = unsafe fn(&mut [f64], &mut [f64], &mut [f64], &[f64], Factors);

/// [`update_plain`] as a body (safe; unsafe only to share the type).
unsafe fn update_portable(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], f: Factors) {
    update_plain(p, m, v, g, f)
}

/// Every body of the update this CPU runs, the portable one first and the
/// fastest last.
fn runnable() -> Vec<UpdateBody> {
    let mut all: Vec<UpdateBody> = vec![update_portable];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        all.push(simd::update_avx512);
    }
    all
}

static UPDATE: std::sync::LazyLock<UpdateBody> =
    std::sync::LazyLock::new(|| runnable().pop().expect("the portable body runs anywhere"));

#[cfg(target_arch = "x86_64")]
mod simd {
    /// [`super::update_plain`] compiled for AVX-512: eight entries per
    /// instruction, each with the same operations in the same order
    /// (square roots and divisions are correctly rounded, and nothing is
    /// fused), so the same bits.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn update_avx512(p: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], f: super::Factors) {
        super::update_plain(p, m, v, g, f)
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
    fn every_body_and_thread_count_gives_the_same_bits() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(4);
        // Rows past the parallel grain, a length that is no multiple of 8,
        // and zero, tiny and huge gradients.
        let (rows, cols) = (150, 37);
        let mut draw = |_| match rng.random_range(0..6) {
            0 => 0.0,
            1 => rng.random_range(-1e-300..1e-300),
            2 => rng.random_range(-1e150..1e150),
            _ => rng.random_range(-1.0..1.0),
        };
        let grads: Vec<Array2<f64>> = (0..3).map(|_| Array2::from_shape_fn((rows, cols), &mut draw)).collect();
        let start = Array2::from_shape_fn((rows, cols), &mut draw);
        // The literal loop, one entry at a time.
        let (mut want, mut m, mut v) =
            (start.clone(), Array2::<f64>::zeros((rows, cols)), Array2::<f64>::zeros((rows, cols)));
        for (t, g) in grads.iter().enumerate() {
            let f = Factors::at(0.01, t as i32 + 1);
            for ((p, m), (v, g)) in want.iter_mut().zip(m.iter_mut()).zip(v.iter_mut().zip(g)) {
                *m = BETA1 * *m + (1.0 - BETA1) * g;
                *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                *p -= f.step_size * *m / (v.sqrt() / f.bias2_sqrt + EPS);
            }
        }
        let bits = |a: &Array2<f64>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (mut p, mut adam) = (start.clone(), Adam::new((rows, cols)));
            pool.install(|| grads.iter().for_each(|g| adam.step(&mut p, g, 0.01)));
            assert_eq!(bits(&p), bits(&want), "{threads} threads");
        }
        for body in runnable() {
            let (mut p, mut m, mut v) = (start.clone(), vec![0.0; rows * cols], vec![0.0; rows * cols]);
            for (t, g) in grads.iter().enumerate() {
                let f = Factors::at(0.01, t as i32 + 1);
                // SAFETY: `runnable` lists only what this CPU runs.
                unsafe { body(p.as_slice_mut().unwrap(), &mut m, &mut v, g.as_slice().unwrap(), f) };
            }
            assert_eq!(bits(&p), bits(&want));
        }
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
