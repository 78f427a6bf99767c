//! ActiveFT (Xie et al., CVPR 2023): optimise `budget` points on the unit
//! sphere so they match the pool's distribution while staying apart, then map
//! each point to its nearest untaken sample.
//!
//! This file is the whole run, top-down: initial points, then per iteration
//! one visit of the batch by the nearest-point engine (which hands each
//! sample to its point's sums), the gradient, and an Adam step; then the
//! mapping. The maths is in `loss` and `point_term`.
//!
//! - `params`, `errors`: the settings and their validation;
//! - `loss`: the objective and its gradient; `point_term`: its point-point part;
//! - `optim`: Adam and the learning-rate schedules;
//! - `init`: where the points start.

mod errors;
pub mod init;
pub mod loss;
mod optim;
pub mod params;
mod point_term;

use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

pub use errors::ParamError;
pub use params::{ActiveFtParams, Init, Scheduler, ValidParams};

use super::{Outcome, Round};
use crate::comm::{Comm, Part};
use crate::error::Result;
use crate::linalg::add_scaled;
use crate::nearest::{Batch, Engine, Mode};
use loss::{PointTerm, Points, SampleLoss, finish_gradient};

/// One point's share of an iteration's sums, over the samples nearest to it.
struct PointSums {
    /// `−Σ σ_i f_i`.
    acc: Vec<f64>,
    /// `Σ σ_i`.
    weight: f64,
    /// The sum of the samples' loss terms, but for the logarithm of `product`.
    loss: f64,
    /// The product of the last `pending` samples' `one_plus` (see
    /// [`SampleLoss::deferred_terms`]): one logarithm per [`LOG_EVERY`]
    /// samples instead of one each.
    product: f64,
    pending: u32,
}

/// Samples whose logarithms are taken as one; their product stays below 2^64.
const LOG_EVERY: u32 = 64;

impl PointSums {
    fn new(dim: usize) -> Self {
        PointSums { acc: vec![0.0; dim], weight: 0.0, loss: 0.0, product: 1.0, pending: 0 }
    }

    /// Adds the pending logarithm to the loss.
    fn settle(&mut self) {
        self.loss += self.product.ln();
        self.product = 1.0;
        self.pending = 0;
    }
}

/// Runs ActiveFT on unit-norm `features` after `round`: each labeled sample
/// is a fixed point at its feature (it serves the samples nearest to it and
/// pushes the learnable points away, but never moves), the `budget`
/// learnable points start at and map to samples not taken. `on_iteration(i,
/// loss)` is called after every iteration, for progress reporting. The rows
/// may be reordered in memory while it runs; they are back in file order
/// when it returns.
pub fn select(
    features: &mut Array2<f32>,
    params: &ValidParams,
    round: &Round,
    mode: Mode,
    on_iteration: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let comm = Comm::single();
    let part = Part::whole(&comm, features.nrows());
    select_part(features, params, round, mode, &part, on_iteration)
}

/// [`select`] over the ranks of `part.comm`, `features` being this rank's
/// rows; ids, `round` and the outcome are global. Every rank returns the
/// same outcome.
pub fn select_part(
    features: &mut Array2<f32>,
    params: &ValidParams,
    round: &Round,
    mode: Mode,
    part: &Part,
    mut on_iteration: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let n = part.n;
    // Independent streams, so changing the batch size never changes the init.
    let mut init_rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
    let mut batch_rng = Xoshiro256PlusPlus::seed_from_u64(params.seed ^ 0x9E37_79B9_7F4A_7C15);
    let init_ids = match &params.init {
        Init::Random => init::random_from(&round.eligible(), params.budget, &mut init_rng),
        Init::Fps => init::farthest_point_part(features.view(), params.budget, round, &mut init_rng, part).0,
        Init::Indices(ids) => ids.clone(),
    };
    let mut raw: Array2<f64> = part.rows(features.view(), &init_ids).mapv(f64::from);
    let fixed = part.rows(features.view(), &round.labeled);
    let mut adam = optim::Adam::new(raw.dim());
    // Every rank must get its engine before the first collective of the loop.
    let mut engine = part.comm.agree(Engine::new(features, params.budget + fixed.nrows(), mode))?;
    let objective = SampleLoss::new(params.temperature, params.balance);
    let mut losses = Vec::with_capacity(params.iterations);
    for i in 0..params.iterations {
        let batch = match params.effective_batch(n) {
            None => Batch::All(n),
            Some(b) => Batch::Subset(init::random(n, b, &mut batch_rng)),
        };
        let points = Points::with_fixed(&raw, fixed.view());
        let term = point_term_part(points.unit32.view(), params.temperature, part.comm);
        let (loss, gradient) =
            evaluate_part(&mut engine, &local_batch(&batch, part), batch.size(), &points, &term, objective, part.comm);
        losses.push(loss);
        on_iteration(i, loss);
        let lr = optim::learning_rate(params.scheduler, params.lr, i, params.iterations);
        adam.step(&mut raw, &gradient, lr);
    }
    let optimize_seconds = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let points = Points::with_fixed(&raw, fixed.view());
    let (picks, work) = if part.is_spread() {
        let taken = round.taken[part.first..part.first + part.rows].to_vec();
        // The report counts the work of every rank.
        let mine = engine.work();
        let mut counts = [mine.full_scans as f64, mine.rescored as f64];
        part.comm.sum(&mut counts);
        let work = crate::nearest::Work { full_scans: counts[0] as u64, rescored: counts[1] as u64 };
        let picks = crate::nearest::map_spread(engine.features(), part, points.unit32.view(), params.budget, taken);
        (picks, work)
    } else {
        engine.map(points.unit32.view(), params.budget, round.taken.clone())
    };
    Ok(Outcome::new(picks, init_ids, losses, optimize_seconds, start.elapsed().as_secs_f64(), work))
}

/// The point term, each rank computing an even share of its blocks of
/// points; the rows are the same bits whoever computes them.
fn point_term_part(points: ArrayView2<f32>, temperature: f64, comm: &Comm) -> PointTerm {
    if comm.size() == 1 {
        return loss::point_term(points, temperature);
    }
    let (k, dim) = points.dim();
    let blocks = crate::comm::share(loss::block_count(k), comm.rank(), comm.size());
    let mine = loss::point_term_blocks(points, temperature, blocks);
    let log_s = comm.gather(&mine.log_s);
    let v = comm.gather(mine.v.as_slice().expect("a fresh array is contiguous"));
    PointTerm { log_s, v: Array2::from_shape_vec((k, dim), v).expect("every rank's rows") }
}

/// This rank's share of a global batch, as local rows.
fn local_batch(batch: &Batch, part: &Part) -> Batch {
    match batch {
        Batch::All(_) => Batch::All(part.rows),
        Batch::Subset(ids) if !part.is_spread() => Batch::Subset(ids.clone()),
        Batch::Subset(ids) => Batch::Subset(ids.iter().filter_map(|&id| part.local(id)).collect()),
    }
}

/// The loss and its gradient with respect to the learnable raw points, in
/// one visit of the batch: each sample adds its loss term and its share of
/// its point's gradient while its row is in cache. Fixed points get no
/// gradient (the samples they serve only add to the loss).
pub fn evaluate(
    engine: &mut Engine,
    batch: &Batch,
    points: &Points,
    term: &PointTerm,
    objective: SampleLoss,
) -> (f64, Array2<f64>) {
    evaluate_part(engine, batch, batch.size(), points, term, objective, &Comm::single())
}

/// [`evaluate`] over the ranks: `batch` is this rank's share of a batch of
/// `batch_size` samples, and the per-point sums are added over the ranks
/// (in rank order) before the gradient.
fn evaluate_part(
    engine: &mut Engine,
    batch: &Batch,
    batch_size: usize,
    points: &Points,
    term: &PointTerm,
    objective: SampleLoss,
    comm: &Comm,
) -> (f64, Array2<f64>) {
    use rayon::prelude::*;
    let dim = points.unit.ncols();
    let mut sums = engine.visit(
        batch,
        points.unit32.view(),
        |_| PointSums::new(dim),
        |sums, point, row, similarity| {
            let (positive, one_plus, sigma) = objective.deferred_terms(term.log_s[point], f64::from(similarity));
            sums.loss += positive;
            sums.product *= one_plus;
            sums.pending += 1;
            if sums.pending == LOG_EVERY {
                sums.settle();
            }
            sums.weight += sigma;
            add_scaled(&mut sums.acc, -sigma, row);
        },
    );
    sums.iter_mut().for_each(PointSums::settle);
    let sums = sum_over_ranks(sums, comm);
    let loss = sums.iter().map(|s| s.loss).sum::<f64>() / batch_size as f64;
    let scale = 1.0 / (objective.temperature() * batch_size as f64);
    let mut gradient = Array2::<f64>::zeros((points.free, dim));
    let learnable = sums.into_iter().take(points.free).collect::<Vec<_>>();
    let rows = gradient.axis_iter_mut(Axis(0)).into_par_iter().zip(learnable).enumerate();
    rows.with_min_len(crate::chunks::FEW_ROWS).for_each(|(point, (mut g, sums))| {
        g.as_slice_mut().expect("gradient rows are contiguous").copy_from_slice(&sums.acc);
        finish_gradient(g, sums.weight, point, term, points, scale);
    });
    (loss, gradient)
}

/// Every point's sums added over the ranks, in rank order.
fn sum_over_ranks(sums: Vec<PointSums>, comm: &Comm) -> Vec<PointSums> {
    if comm.size() == 1 {
        return sums;
    }
    let dim = sums.first().map_or(0, |s| s.acc.len());
    let mut flat: Vec<f64> = sums.iter().flat_map(|s| s.acc.iter().copied().chain([s.weight, s.loss])).collect();
    comm.sum(&mut flat);
    flat.chunks_exact(dim + 2)
        .map(|c| PointSums { acc: c[..dim].to_vec(), weight: c[dim], loss: c[dim + 1], product: 1.0, pending: 0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::RngExt;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn pruned_engine_equals_dense_engine(
            n in 30usize..600, d in 2usize..20, clusters in 1usize..12, budget_frac in 0.02f64..0.3,
            low_t in proptest::bool::ANY, grid in proptest::bool::ANY, batch in proptest::bool::ANY, seed in 0u64..500,
            labeled_every in 0usize..12, excluded_every in 0usize..9, fps in proptest::bool::ANY,
        ) {
            let features = crate::testing::clustered(n, d, clusters, 0.4, grid, seed);
            let round = crate::testing::round_every(n, labeled_every, excluded_every);
            let left = round.left();
            let mut params = ActiveFtParams::new(((left as f64 * budget_frac) as usize).max(1));
            params.iterations = 25;
            params.init = if fps { Init::Fps } else { Init::Random };
            params.temperature = if low_t { 0.005 } else { 0.07 };
            params.batch_size = batch.then_some(n / 2);
            params.seed = seed;
            let params = params.check(n).unwrap();
            let mut a = features.clone();
            let mut b = features.clone();
            let dense = select(&mut a, &params, &round, Mode::Dense, |_, _| {}).unwrap();
            let pruned = select(&mut b, &params, &round, Mode::Pruned, |_, _| {}).unwrap();
            prop_assert_eq!(&dense.selected, &pruned.selected);
            prop_assert!(pruned.selected.iter().chain(&pruned.init).all(|&i| !round.taken[i]));
            for (x, y) in dense.losses.iter().zip(&pruned.losses) {
                prop_assert!((x - y).abs() <= 1e-5, "{} vs {}", x, y);
            }
            // The pool is back in its original order.
            prop_assert_eq!(&b, &features);
        }
    }

    /// One visit's loss and gradient against the oracle's assignment plus the
    /// literal loss and gradient, along a random walk of the points.
    /// The last `fixed` points are samples of the pool that never move.
    fn agrees_with_the_oracle(n: usize, k: usize, d: usize, t: f64, batch: Option<usize>, seed: u64, fixed: usize) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let original = crate::testing::unit_rows(n, d, &mut rng, None);
        let mut features = original.clone();
        let mut raw = crate::testing::unit_rows(k, d, &mut rng, None).mapv(f64::from) * 1.3;
        let labeled: Vec<usize> = (0..fixed).map(|i| i * 7 % n).collect();
        let fixed_rows = original.select(Axis(0), &labeled);
        let objective = SampleLoss::new(t, 0.8);
        let mut engine = Engine::new(&mut features, k + fixed, Mode::Pruned).unwrap();
        for _ in 0..10 {
            let batch = match batch {
                Some(b) => Batch::Subset(rand::seq::index::sample(&mut rng, n, b).into_vec()),
                None => Batch::All(n),
            };
            let points = Points::with_fixed(&raw, fixed_rows.view());
            let term = loss::point_term(points.unit32.view(), t);
            let (fast_loss, fast_gradient) = evaluate(&mut engine, &batch, &points, &term, objective);
            let assignment = crate::nearest::dense(original.view(), &batch, points.unit32.view());
            let (loss, all) = loss::loss_and_gradient(original.view(), &batch, &assignment, &term, &points, t, 0.8);
            let gradient = all.slice(ndarray::s![..k, ..]).to_owned();
            assert!((fast_loss - loss).abs() <= 1e-12 * loss.abs(), "{fast_loss} vs {loss}");
            let scale = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            let worst = (&fast_gradient - &gradient).iter().fold(0.0f64, |m, g| m.max(g.abs()));
            assert!(worst <= 1e-9 * scale, "gradient differs by {worst} (scale {scale})");
            raw -= &(gradient * 0.3);
            raw.mapv_inplace(|x| x + rng.random_range(-0.01..0.01));
        }
    }

    #[test]
    fn one_visit_gives_the_oracles_loss_and_gradient() {
        agrees_with_the_oracle(2000, 30, 12, 0.07, None, 1, 0);
        agrees_with_the_oracle(1500, 80, 6, 0.005, None, 2, 0);
        agrees_with_the_oracle(1200, 20, 10, 0.1, Some(500), 3, 0);
        agrees_with_the_oracle(300, 1, 5, 0.07, None, 4, 0);
        agrees_with_the_oracle(2000, 25, 8, 0.07, None, 5, 40);
        agrees_with_the_oracle(900, 10, 6, 0.05, Some(400), 6, 15);
    }
}
