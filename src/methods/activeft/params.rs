//! Settings of an ActiveFT run, and their validation against the pool.

use super::errors::ParamError;

/// How the learnable points are initialised.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// Seeded uniform sample of `budget` distinct samples.
    Random,
    /// Farthest-point sampling (cosine) from a seeded random first sample.
    Fps,
    /// These sample ids, in this order (the order decides the mapping).
    Indices(Vec<usize>),
}

/// Learning-rate schedule over the iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    Constant,
    /// Cosine annealing from `lr` to 1e-6 over all iterations.
    Cosine,
}

/// The paper's defaults: used by [`ActiveFtParams::new`] and shown by `--help`.
pub mod defaults {
    pub const ITERATIONS: usize = 300;
    pub const LR: f64 = 1e-3;
    pub const TEMPERATURE: f64 = 0.07;
    pub const BALANCE: f64 = 1.0;
}

/// Unchecked settings; [`ActiveFtParams::check`] turns them into [`ValidParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveFtParams {
    pub budget: usize,
    pub iterations: usize,
    pub lr: f64,
    pub temperature: f64,
    pub balance: f64,
    pub scheduler: Scheduler,
    pub init: Init,
    /// Samples per iteration; `None` (or at least the pool size) means all.
    pub batch_size: Option<usize>,
    pub seed: u64,
}

impl ActiveFtParams {
    /// The paper's defaults for a given budget.
    pub fn new(budget: usize) -> Self {
        ActiveFtParams {
            budget,
            iterations: defaults::ITERATIONS,
            lr: defaults::LR,
            temperature: defaults::TEMPERATURE,
            balance: defaults::BALANCE,
            scheduler: Scheduler::Constant,
            init: Init::Random,
            batch_size: None,
            seed: 0,
        }
    }

    /// Validates every setting against a pool of `n` samples.
    pub fn check(self, n: usize) -> Result<ValidParams, ParamError> {
        if self.budget == 0 {
            return Err(ParamError::ZeroBudget);
        }
        if self.budget > n {
            return Err(ParamError::BudgetTooLarge { budget: self.budget, n });
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.temperature) {
            return Err(ParamError::Temperature(self.temperature));
        }
        if !positive(self.lr) {
            return Err(ParamError::LearningRate(self.lr));
        }
        if !positive(self.balance) {
            return Err(ParamError::Balance(self.balance));
        }
        if self.batch_size == Some(0) {
            return Err(ParamError::BatchSize);
        }
        if let Init::Indices(ids) = &self.init {
            check_init_indices(ids, self.budget, n)?;
        }
        Ok(ValidParams(self))
    }
}

fn check_init_indices(ids: &[usize], budget: usize, n: usize) -> Result<(), ParamError> {
    if ids.len() != budget {
        return Err(ParamError::InitCount { got: ids.len(), budget });
    }
    let mut seen = vec![false; n];
    for &id in ids {
        if id >= n {
            return Err(ParamError::InitOutOfRange { id, n });
        }
        if std::mem::replace(&mut seen[id], true) {
            return Err(ParamError::InitDuplicate(id));
        }
    }
    Ok(())
}

/// Settings known to be usable with the pool they were checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidParams(ActiveFtParams);

impl std::ops::Deref for ValidParams {
    type Target = ActiveFtParams;
    fn deref(&self) -> &ActiveFtParams {
        &self.0
    }
}

impl ValidParams {
    /// The batch size actually used: `None` when every sample is used.
    pub fn effective_batch(&self, n: usize) -> Option<usize> {
        self.batch_size.filter(|&b| b < n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ActiveFtParams {
        ActiveFtParams::new(3)
    }

    #[test]
    fn defaults_are_the_papers() {
        let p = params().check(10).unwrap();
        assert_eq!((p.iterations, p.lr, p.temperature, p.balance), (300, 1e-3, 0.07, 1.0));
    }

    #[test]
    fn each_rule_rejects_its_case() {
        let cases: Vec<(ActiveFtParams, ParamError)> = vec![
            (ActiveFtParams { budget: 0, ..params() }, ParamError::ZeroBudget),
            (ActiveFtParams { budget: 11, ..params() }, ParamError::BudgetTooLarge { budget: 11, n: 10 }),
            (ActiveFtParams { temperature: 0.0, ..params() }, ParamError::Temperature(0.0)),
            (ActiveFtParams { temperature: -1.0, ..params() }, ParamError::Temperature(-1.0)),
            (ActiveFtParams { lr: 0.0, ..params() }, ParamError::LearningRate(0.0)),
            (ActiveFtParams { balance: -0.5, ..params() }, ParamError::Balance(-0.5)),
            (ActiveFtParams { batch_size: Some(0), ..params() }, ParamError::BatchSize),
            (
                ActiveFtParams { init: Init::Indices(vec![1, 2]), ..params() },
                ParamError::InitCount { got: 2, budget: 3 },
            ),
            (ActiveFtParams { init: Init::Indices(vec![1, 2, 1]), ..params() }, ParamError::InitDuplicate(1)),
            (
                ActiveFtParams { init: Init::Indices(vec![1, 2, 10]), ..params() },
                ParamError::InitOutOfRange { id: 10, n: 10 },
            ),
        ];
        for (p, want) in cases {
            assert_eq!(p.clone().check(10).unwrap_err(), want, "{p:?}");
        }
        // NaN equals nothing, so compare the flag each names.
        assert_eq!(ActiveFtParams { lr: f64::NAN, ..params() }.check(10).unwrap_err().flag(), "--lr");
        let nan_t = ActiveFtParams { temperature: f64::NAN, ..params() };
        assert_eq!(nan_t.check(10).unwrap_err().flag(), "--temperature");
    }

    #[test]
    fn budget_equal_to_the_pool_and_oversized_batches_are_fine() {
        let p = ActiveFtParams { budget: 10, batch_size: Some(50), ..params() }.check(10).unwrap();
        assert_eq!(p.effective_batch(10), None);
        let p = ActiveFtParams { batch_size: Some(4), ..params() }.check(10).unwrap();
        assert_eq!(p.effective_batch(10), Some(4));
    }
}
