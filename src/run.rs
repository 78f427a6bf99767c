//! What the binary does: parse, run the subcommand, map errors to exit codes.

use std::path::Path;
use std::time::Instant;

use crate::cli::{self, Command};
use crate::config::{InitChoice, SelectConfig};
use crate::error::{Error, Result};
use crate::io::json::{AtomicFile, Sink, selection_json};
use crate::io::npy::load_features;
use crate::io::report::{Report, ReportParams, Seconds};
use crate::progress;
use crate::select::activeft::{self, Scheduler};

/// Runs the command line; returns the process exit code: 0 on success,
/// 2 for bad input or usage, 1 when the tool itself fails.
pub fn run() -> i32 {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Select(args) => SelectConfig::from_args(args).and_then(|c| select(&c)),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("activeft: {e}");
            e.exit_code()
        }
    }
}

fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))
}

fn select(config: &SelectConfig) -> Result<()> {
    let start = Instant::now();
    // Reserve the outputs first: an unwritable path should fail in a second,
    // not after the optimisation.
    let sink = Sink::open(config.output.as_deref())?;
    let report_file = config.report.as_deref().map(AtomicFile::create).transpose()?;
    let pool = thread_pool(config.threads)?;
    pool.install(|| {
        let mut features = load_features(&config.features, config.drop_label_column)?;
        let load_seconds = start.elapsed().as_secs_f64();
        let params = config.activeft_params(features.nrows())?;
        let bar = progress::bar(params.iterations as u64, config.quiet);
        let outcome = activeft::select(&mut features, &params, |i, loss| {
            bar.set_position(i as u64 + 1);
            bar.set_message(format!("{loss:.6}"));
        });
        bar.finish_and_clear();
        if outcome.losses.iter().any(|l| !l.is_finite()) {
            return Err(Error::Internal("the loss became non-finite; try a smaller --lr".into()));
        }
        if let Some(file) = report_file {
            let report = Report {
                selected: outcome.selected.clone(),
                init: outcome.init,
                losses: outcome.losses,
                n: features.nrows(),
                dim: features.ncols(),
                budget: params.budget,
                seed: params.seed,
                method: "activeft",
                features: config.features.iter().map(|p| display(p)).collect(),
                params: ReportParams {
                    iterations: params.iterations,
                    lr: params.lr,
                    temperature: params.temperature,
                    balance: params.balance,
                    scheduler: match params.scheduler {
                        Scheduler::Constant => "none",
                        Scheduler::Cosine => "cosine",
                    },
                    init: match &config.init {
                        InitChoice::Random => "random",
                        InitChoice::Fps => "fps",
                        InitChoice::Indices { .. } => "indices",
                    },
                    init_indices: match &config.init {
                        InitChoice::Indices { path, .. } => Some(display(path)),
                        _ => None,
                    },
                    batch_size: params.effective_batch(features.nrows()),
                    label_column_dropped: config.drop_label_column,
                    threads: rayon::current_num_threads(),
                },
                seconds: Seconds {
                    load: load_seconds,
                    optimize: outcome.optimize_seconds,
                    map: outcome.map_seconds,
                    total: start.elapsed().as_secs_f64(),
                },
                work: outcome.work,
                version: env!("CARGO_PKG_VERSION"),
            };
            let mut bytes = serde_json::to_vec_pretty(&report).expect("the report serialises");
            bytes.push(b'\n');
            file.commit(&bytes)?;
        }
        // A closed stdout (`| head`) ends the run quietly.
        sink.write(&selection_json(&outcome.selected)).map(|_| ())
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
