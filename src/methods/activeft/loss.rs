//! The ActiveFT objective and its exact gradient.
//!
//! With unit features `f_i`, unit points `ĉ_k`, temperature `t`, balance `b`:
//!
//! ```text
//! s_i   = max_k f_i·ĉ_k / t                       (p_i = argmax)
//! S_k   = Σ_j exp(sg(ĉ_j)·ĉ_k / t)
//! loss  = mean_i [ log(exp(s_i) + b·S_{p_i}) − s_i ] = mean_i softplus(u_i),
//! u_i   = ln b + ln S_{p_i} − s_i
//! ```
//!
//! Everything is evaluated in log space, so any temperature > 0 works (the
//! reference overflows float32 below t ≈ 0.0113). Writing σ for the logistic
//! function and `w_kj = softmax_j(ĉ_j·ĉ_k / t)`, the gradient with respect to
//! the unit point `ĉ_k` is
//!
//! ```text
//! g_k = 1/(t·N) · Σ_{i: p_i = k} σ(u_i) · (V_k − f_i),    V_k = Σ_j w_kj ĉ_j,
//! ```
//!
//! and with respect to the raw point `c_k` it is `(g_k − (g_k·ĉ_k) ĉ_k) / |c_k|`.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

pub use super::point_term::{PointTerm, block_count, point_term, point_term_blocks};
use crate::chunks;
use crate::nearest::{Assignment, Batch, group_by_point};

/// The points in the forms the objective needs: the learnable ones first,
/// then the fixed ones (already labeled samples), which never move.
pub struct Points {
    pub unit: Array2<f64>,
    pub unit32: Array2<f32>,
    pub norms: Vec<f64>,
    /// How many come first and learn.
    pub free: usize,
}

impl Points {
    /// Learnable points only.
    pub fn new(raw: &Array2<f64>) -> Self {
        Points::with_fixed(raw, ArrayView2::from_shape((0, raw.ncols()), &[]).expect("an empty view"))
    }

    /// Learnable points from `raw`, followed by `fixed` unit rows as they are.
    pub fn with_fixed(raw: &Array2<f64>, fixed: ArrayView2<f32>) -> Self {
        let (mut unit, mut norms) = crate::linalg::normalize_rows(raw);
        let mut unit32 = unit.mapv(|x| x as f32);
        let free = raw.nrows();
        if fixed.nrows() > 0 {
            unit.append(Axis(0), fixed.mapv(f64::from).view()).expect("same width");
            unit32.append(Axis(0), fixed).expect("same width");
            norms.resize(free + fixed.nrows(), 1.0);
        }
        Points { unit, unit32, norms, free }
    }
}

/// A feature value type: float32 for the pool, float64 for test oracles.
pub trait Feature: Copy + Sync {
    /// `acc += alpha * row`, in float64.
    fn add_scaled(acc: &mut [f64], alpha: f64, row: &[Self]);
}

impl Feature for f32 {
    fn add_scaled(acc: &mut [f64], alpha: f64, row: &[f32]) {
        crate::linalg::add_scaled(acc, alpha, row);
    }
}

impl Feature for f64 {
    fn add_scaled(acc: &mut [f64], alpha: f64, row: &[f64]) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += alpha * v;
        }
    }
}

/// The per-sample part of the objective.
#[derive(Debug, Clone, Copy)]
pub struct SampleLoss {
    ln_balance: f64,
    temperature: f64,
}

impl SampleLoss {
    pub fn new(temperature: f64, balance: f64) -> Self {
        SampleLoss { ln_balance: balance.ln(), temperature }
    }

    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The sample's loss term `softplus(u)` and its weight `σ(u)` in the
    /// gradient, with `u = ln b + ln S_p − sim / t`; one `exp`, no overflow.
    #[inline]
    pub fn terms(&self, log_s: f64, similarity: f64) -> (f64, f64) {
        let (u, e) = self.exponent(log_s, similarity);
        (u.max(0.0) + e.ln_1p(), sigmoid(u, e))
    }

    /// [`SampleLoss::terms`] with the logarithm left out:
    /// `softplus(u) = positive + ln(one_plus)`, so that the logarithms of
    /// many samples can be taken as one, of the product of their
    /// `one_plus` (each in (1, 2]). Returns `(positive, one_plus, σ(u))`.
    #[inline]
    pub fn deferred_terms(&self, log_s: f64, similarity: f64) -> (f64, f64, f64) {
        let (u, e) = self.exponent(log_s, similarity);
        (u.max(0.0), 1.0 + e, sigmoid(u, e))
    }

    /// `u` and `e = exp(−|u|)`.
    #[inline]
    fn exponent(&self, log_s: f64, similarity: f64) -> (f64, f64) {
        let u = self.ln_balance + log_s - similarity / self.temperature;
        (u, (-u.abs()).exp())
    }
}

/// `σ(u)` from `u` and `e = exp(−|u|)`, without overflow.
#[inline]
fn sigmoid(u: f64, e: f64) -> f64 {
    if u >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) }
}

/// Turns `acc = −Σ σ_i f_i` and `weight = Σ σ_i` over the samples assigned
/// to point `k` into the gradient with respect to the raw point `c_k`:
/// `g = (weight · V_k + acc) / (t N)`, then through `ĉ = c / |c|`.
pub fn finish_gradient(
    mut g: ndarray::ArrayViewMut1<f64>,
    weight: f64,
    k: usize,
    term: &PointTerm,
    points: &Points,
    scale: f64,
) {
    g.scaled_add(weight, &term.v.row(k));
    g *= scale;
    let unit = points.unit.row(k);
    let radial = g.dot(&unit);
    g.scaled_add(-radial, &unit);
    g /= points.norms[k];
}

/// The loss and its gradient with respect to the raw points, given the
/// batch's assignment and the point term. Generic over the feature type so
/// the same code serves the float32 pool and the float64 test oracle.
pub fn loss_and_gradient<T: Feature>(
    features: ArrayView2<T>,
    batch: &Batch,
    assignment: &Assignment,
    term: &PointTerm,
    points: &Points,
    temperature: f64,
    balance: f64,
) -> (f64, Array2<f64>) {
    let n = batch.size();
    let objective = SampleLoss::new(temperature, balance);
    let (losses, sigmas): (Vec<f64>, Vec<f64>) = (0..n)
        .into_par_iter()
        .with_min_len(chunks::SUM)
        .map(|i| objective.terms(term.log_s[assignment.point[i]], assignment.similarity[i]))
        .unzip();

    let members = group_by_point(&assignment.point, points.unit.nrows());
    let mut grad = Array2::<f64>::zeros(points.unit.dim());
    let scale = 1.0 / (temperature * n as f64);
    grad.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(k, mut g)| {
        let mut weight = 0.0;
        let acc = g.as_slice_mut().expect("gradient rows are contiguous");
        for &i in &members[k] {
            weight += sigmas[i];
            T::add_scaled(acc, -sigmas[i], features.row(batch.id(i)).as_slice().expect("feature rows are contiguous"));
        }
        finish_gradient(g, weight, k, term, points, scale);
    });
    (chunks::mean(&losses), grad)
}

#[cfg(test)]
mod tests {
    use super::super::point_term::point_term_f64;
    use super::*;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn random_unit_rows(n: usize, d: usize, seed: u64) -> Array2<f64> {
        crate::testing::unit_rows64(n, d, &mut Xoshiro256PlusPlus::seed_from_u64(seed), None)
    }

    /// The objective written out literally, in f64 and in the plain
    /// exponential form: the oracle for everything above. `detached` plays
    /// the stop-gradient operand of S_k: finite differences move `raw` only.
    fn naive_loss_sg(features: &Array2<f64>, raw: &Array2<f64>, detached: &Array2<f64>, t: f64, b: f64) -> f64 {
        let (unit, _) = crate::linalg::normalize_rows(raw);
        let (fixed, _) = crate::linalg::normalize_rows(detached);
        let s_of = |k: usize| -> f64 { fixed.rows().into_iter().map(|cj| (cj.dot(&unit.row(k)) / t).exp()).sum() };
        let total: f64 = features
            .rows()
            .into_iter()
            .map(|f| {
                let sims: Vec<f64> = unit.rows().into_iter().map(|c| f.dot(&c) / t).collect();
                let (p, s) =
                    sims.iter().enumerate().fold((0, f64::NEG_INFINITY), |a, (j, &x)| if x > a.1 { (j, x) } else { a });
                (s.exp() + b * s_of(p)).ln() - s
            })
            .sum();
        total / features.nrows() as f64
    }

    fn naive_loss(features: &Array2<f64>, raw: &Array2<f64>, t: f64, b: f64) -> f64 {
        naive_loss_sg(features, raw, raw, t, b)
    }

    /// The exact f64 assignment, for the f64 oracle path.
    fn assign_f64(features: &Array2<f64>, unit: &Array2<f64>) -> Assignment {
        let (point, similarity) = features
            .rows()
            .into_iter()
            .map(|f| {
                unit.rows()
                    .into_iter()
                    .map(|c| f.dot(&c))
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |a, (j, x)| if x > a.1 { (j, x) } else { a })
            })
            .unzip();
        Assignment { point, similarity }
    }

    fn analytic(features: &Array2<f64>, raw: &Array2<f64>, t: f64, b: f64) -> (f64, Array2<f64>) {
        let points = Points::new(raw);
        let assignment = assign_f64(features, &points.unit);
        let term = point_term_f64(&points.unit, t);
        loss_and_gradient(features.view(), &Batch::All(features.nrows()), &assignment, &term, &points, t, b)
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for (seed, t, b) in [(1, 0.07, 1.0), (2, 0.5, 0.3), (3, 0.2, 2.0)] {
            let features = random_unit_rows(40, 6, seed);
            // Raw points of varied length, to exercise the normalisation.
            let raw = random_unit_rows(5, 6, seed + 100) * 1.7;
            let (loss, grad) = analytic(&features, &raw, t, b);
            assert!((loss - naive_loss(&features, &raw, t, b)).abs() < 1e-12);
            let h = 1e-6;
            for ((k, j), &g) in grad.indexed_iter() {
                let (mut up, mut down) = (raw.clone(), raw.clone());
                up[[k, j]] += h;
                down[[k, j]] -= h;
                let fd = (naive_loss_sg(&features, &up, &raw, t, b) - naive_loss_sg(&features, &down, &raw, t, b))
                    / (2.0 * h);
                assert!((fd - g).abs() < 1e-6 * (1.0 + g.abs()), "t {t}: d/dc[{k},{j}] analytic {g} vs fd {fd}");
            }
        }
    }

    #[test]
    fn low_temperatures_stay_finite_and_exact() {
        // exp(1/0.005) overflows f64 too past ~t = 0.0014; log space does not care.
        let features = random_unit_rows(30, 5, 7);
        let raw = random_unit_rows(4, 5, 8);
        for t in [0.005, 0.001] {
            let (loss, grad) = analytic(&features, &raw, t, 1.0);
            assert!(loss.is_finite() && grad.iter().all(|g| g.is_finite()));
        }
        // Where the naive form is representable, the two agree.
        let (loss, _) = analytic(&features, &raw, 0.005, 1.0);
        assert!((loss - naive_loss(&features, &raw, 0.005, 1.0)).abs() < 1e-9 * loss.abs().max(1.0));
    }

    #[test]
    fn float32_path_matches_the_f64_oracle() {
        let features = random_unit_rows(700, 20, 11);
        let raw = random_unit_rows(37, 20, 12);
        let features32 = features.mapv(|x| x as f32);
        let points = Points::new(&raw);
        let batch = Batch::All(features.nrows());
        let fast = crate::nearest::dense(features32.view(), &batch, points.unit32.view());
        let slow = assign_f64(&features, &points.unit);
        assert_eq!(fast.point, slow.point);
        let term = point_term(points.unit32.view(), 0.07);
        let (loss, grad) = loss_and_gradient(features32.view(), &batch, &fast, &term, &points, 0.07, 1.0);
        let (loss64, grad64) = analytic(&features, &raw, 0.07, 1.0);
        assert!((loss - loss64).abs() < 1e-5, "{loss} vs {loss64}");
        let worst = (&grad - &grad64).iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(worst < 1e-3 * grad64.iter().fold(0.0f64, |m, x| m.max(x.abs())), "{worst}");
    }

    #[test]
    fn subset_batches_use_only_their_samples() {
        let features = random_unit_rows(50, 4, 21).mapv(|x| x as f32);
        let points = Points::new(&random_unit_rows(3, 4, 22));
        let ids = vec![40, 3, 17, 3 + 1];
        let batch = Batch::Subset(ids.clone());
        let got = crate::nearest::dense(features.view(), &batch, points.unit32.view());
        let picked = features.select(Axis(0), &ids);
        let want = crate::nearest::dense(picked.view(), &Batch::All(ids.len()), points.unit32.view());
        assert_eq!(got, want);
    }
}
