//! Why a set of ActiveFT settings cannot be used.

/// A setting that is invalid on its own or for the pool at hand.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("must be at least 1")]
    ZeroBudget,
    #[error("{budget} is more than the {n} samples in the pool")]
    BudgetTooLarge { budget: usize, n: usize },
    #[error("must be a positive number, got {0}")]
    Temperature(f64),
    #[error("must be a positive number, got {0}")]
    LearningRate(f64),
    #[error("must be a positive number, got {0}")]
    Balance(f64),
    #[error("must be at least 1")]
    BatchSize,
    #[error("holds {got} sample ids, one per point, but ActiveFT has {budget} points (the budget; with bilaf, --core)")]
    InitCount { got: usize, budget: usize },
    #[error("sample id {0} appears more than once")]
    InitDuplicate(usize),
    #[error("sample id {id} is out of range for a pool of {n} samples")]
    InitOutOfRange { id: usize, n: usize },
}

impl ParamError {
    /// The command-line flag whose value is at fault.
    pub fn flag(&self) -> &'static str {
        match self {
            ParamError::ZeroBudget | ParamError::BudgetTooLarge { .. } => "--budget",
            ParamError::Temperature(_) => "--temperature",
            ParamError::LearningRate(_) => "--lr",
            ParamError::Balance(_) => "--balance",
            ParamError::BatchSize => "--batch-size",
            ParamError::InitCount { .. } | ParamError::InitDuplicate(_) | ParamError::InitOutOfRange { .. } => {
                "--init-indices"
            }
        }
    }
}
