//! Plain settings, converted once from the command line.

use std::path::PathBuf;
use std::str::FromStr;

use crate::cli::{EvalArgs, InitArg, MethodArg, SchedulerArg, SelectArgs};
use crate::error::{Error, Result};
use crate::io::json::read_index_list;
use crate::select::Method;
use crate::select::activeft::{ActiveFtParams, Init, Scheduler, ValidParams};

/// `--budget`: a count, or a percentage of the pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Count(usize),
    Percent(f64),
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| format!("'{p}' is not a number"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!("a percentage must be in (0, 100], got {p}%"));
            }
            return Ok(Budget::Percent(p));
        }
        s.parse().map(Budget::Count).map_err(|_| "expected a whole number (1000) or a percentage (2%)".into())
    }
}

impl Budget {
    /// The number of samples for a pool of `n`; a percentage is rounded down
    /// exactly as the reference does (`int(n * p * 0.01)`).
    pub fn resolve(self, n: usize) -> Result<usize> {
        match self {
            Budget::Count(k) => Ok(k),
            Budget::Percent(p) => {
                let k = (n as f64 * p * 0.01).floor() as usize;
                if k == 0 {
                    return Err(Error::usage("--budget", format!("{p}% of {n} samples rounds down to 0")));
                }
                Ok(k)
            }
        }
    }
}

/// Everything `select` needs, free of clap types.
#[derive(Debug, Clone)]
pub struct SelectConfig {
    pub method: Method,
    pub features: Vec<PathBuf>,
    pub drop_label_column: bool,
    pub output: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub budget: Budget,
    pub iterations: usize,
    pub lr: f64,
    pub temperature: f64,
    pub balance: f64,
    pub scheduler: Scheduler,
    pub init: InitChoice,
    pub batch_size: Option<usize>,
    pub seed: u64,
    pub threads: Option<usize>,
    pub quiet: bool,
}

/// The initialisation as given; ids from a file are read before the pool.
#[derive(Debug, Clone)]
pub enum InitChoice {
    Random,
    Fps,
    Indices { path: PathBuf, ids: Vec<usize> },
}

impl SelectConfig {
    /// Reads `--init-indices` (cheap, so its errors come before the pool loads).
    pub fn from_args(args: SelectArgs) -> Result<Self> {
        let init = match (&args.init_indices, args.init) {
            (Some(path), _) => InitChoice::Indices { path: path.clone(), ids: read_index_list(path)? },
            (None, InitArg::Random) => InitChoice::Random,
            (None, InitArg::Fps) => InitChoice::Fps,
        };
        Ok(SelectConfig {
            method: match args.method {
                MethodArg::Activeft => Method::ActiveFt,
                MethodArg::Random => Method::Random,
                MethodArg::Fds => Method::Fds,
                MethodArg::Kmeans => Method::KMeans,
            },
            features: args.features,
            drop_label_column: args.label_column.is_some(),
            output: args.output,
            report: args.report,
            budget: args.budget,
            iterations: args.iterations,
            lr: args.lr,
            temperature: args.temperature,
            balance: args.balance,
            scheduler: match args.scheduler {
                SchedulerArg::None => Scheduler::Constant,
                SchedulerArg::Cosine => Scheduler::Cosine,
            },
            init,
            batch_size: args.batch_size,
            seed: args.seed,
            threads: args.threads.map(usize::from),
            quiet: args.quiet,
        })
    }

    /// The ActiveFT settings for a pool of `n` samples, validated.
    pub fn activeft_params(&self, n: usize) -> Result<ValidParams> {
        let params = ActiveFtParams {
            budget: self.budget.resolve(n)?,
            iterations: self.iterations,
            lr: self.lr,
            temperature: self.temperature,
            balance: self.balance,
            scheduler: self.scheduler,
            init: match &self.init {
                InitChoice::Random => Init::Random,
                InitChoice::Fps => Init::Fps,
                InitChoice::Indices { ids, .. } => Init::Indices(ids.clone()),
            },
            batch_size: self.batch_size,
            seed: self.seed,
        };
        params.check(n).map_err(|e| match (&self.init, e.flag()) {
            (InitChoice::Indices { path, .. }, "--init-indices") => Error::input(path, e.to_string()),
            (_, flag) => Error::usage(flag, e.to_string()),
        })
    }
}

/// Everything `eval` needs.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub features: Vec<PathBuf>,
    pub selection: PathBuf,
    pub labels: Option<PathBuf>,
    pub label_column: bool,
    pub json: bool,
    pub plot: Option<PathBuf>,
    pub threads: Option<usize>,
}

impl From<EvalArgs> for EvalConfig {
    fn from(args: EvalArgs) -> Self {
        EvalConfig {
            features: args.features,
            selection: args.selection,
            labels: args.labels,
            label_column: args.label_column.is_some(),
            json: args.json,
            plot: args.plot,
            threads: args.threads.map(usize::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_round_like_the_reference() {
        assert_eq!("1000".parse(), Ok(Budget::Count(1000)));
        assert_eq!("2%".parse(), Ok(Budget::Percent(2.0)));
        assert_eq!(Budget::Percent(1.0).resolve(1_281_167).unwrap(), 12_811);
        assert_eq!(Budget::Percent(2.5).resolve(1797).unwrap(), 44);
        // int(100 * 7 * 0.01) == 7 in Python, though 7 * 0.01 * 100 is not exact.
        assert_eq!(Budget::Percent(7.0).resolve(100).unwrap(), 7);
        assert!(Budget::Percent(0.01).resolve(50).is_err());
        for bad in ["abc", "0%", "101%", "-3%", "%", "1.5", "-1"] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
    }
}
