//! What the binary does: parse, run the subcommand, map errors to exit codes.

use std::path::Path;
use std::time::Instant;

use crate::cli::{self, Command};
use crate::config::{EvalConfig, InitChoice, SelectConfig};
use crate::error::{Error, Result};
use crate::eval::{self, Metrics};
use crate::io::json::{AtomicFile, Sink, read_index_list, selection_json};
use crate::io::npy::{load_features, load_labels};
use crate::io::report::{Report, ReportParams, Seconds};
use crate::progress;
use crate::select::{self, Method, activeft::Scheduler};

/// Runs the command line; returns the process exit code: 0 on success,
/// 2 for bad input or usage, 1 when the tool itself fails.
pub fn run() -> i32 {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Select(args) => SelectConfig::from_args(args).and_then(|c| run_select(&c)),
        Command::Eval(args) => run_eval(&EvalConfig::from(args)),
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

fn run_select(config: &SelectConfig) -> Result<()> {
    let start = Instant::now();
    // Reserve the outputs first: an unwritable path should fail in a second,
    // not after the optimisation.
    let sink = Sink::open(config.output.as_deref())?;
    let report_file = config.report.as_deref().map(AtomicFile::create).transpose()?;
    let pool = thread_pool(config.threads)?;
    pool.install(|| {
        let mut features = load_features(&config.features, config.drop_label_column)?.features;
        let load_seconds = start.elapsed().as_secs_f64();
        let params = config.activeft_params(features.nrows())?;
        let steps = if config.method == Method::ActiveFt { params.iterations } else { 0 };
        let bar = progress::bar(steps as u64, config.quiet);
        let outcome = select::run(config.method, &mut features, &params, |i, loss| {
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
                method: config.method.name(),
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

fn run_eval(config: &EvalConfig) -> Result<()> {
    let plot_file = config.plot.as_deref().map(AtomicFile::create).transpose()?;
    let selection = read_index_list(&config.selection)?;
    let pool = thread_pool(config.threads)?;
    pool.install(|| {
        let loaded = load_features(&config.features, config.label_column)?;
        let n = loaded.features.nrows();
        let selected = check_selection(&config.selection, selection, n)?;
        let labels = match (&config.labels, loaded.label_column) {
            (Some(path), _) => Some(checked_labels(path, load_labels(path)?, n)?),
            (None, Some(column)) => Some(integer_column(&config.features[0], &column)?),
            (None, None) => None,
        };
        let metrics = eval::evaluate(loaded.features.view(), &selected, labels.as_deref());
        if let Some(file) = plot_file {
            let title = format!("{} selected of {n}", selected.len());
            file.commit(eval::plot::svg(loaded.features.view(), &selected, &title).as_bytes())?;
        }
        let text = if config.json {
            let mut line = serde_json::to_string(&metrics).expect("metrics serialise");
            line.push('\n');
            line
        } else {
            table(&metrics)
        };
        Sink::Stdout.write(text.as_bytes()).map(|_| ())
    })
}

/// The selection as sorted ids, or why it cannot be judged.
fn check_selection(path: &Path, mut ids: Vec<usize>, n: usize) -> Result<Vec<usize>> {
    if ids.is_empty() {
        return Err(Error::input(path, "is an empty selection"));
    }
    if let Some(&id) = ids.iter().find(|&&id| id >= n) {
        return Err(Error::input(path, format!("sample id {id} is out of range for a pool of {n} samples")));
    }
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::input(path, format!("sample id {} appears more than once", pair[0])));
    }
    Ok(ids)
}

fn checked_labels(path: &Path, labels: Vec<i64>, n: usize) -> Result<Vec<i64>> {
    if labels.len() != n {
        return Err(Error::input(path, format!("holds {} labels but the pool has {n} samples", labels.len())));
    }
    Ok(labels)
}

/// The dropped label column as integers.
fn integer_column(path: &Path, column: &[f32]) -> Result<Vec<i64>> {
    column
        .iter()
        .enumerate()
        .map(|(row, &v)| {
            if v.fract() == 0.0 && v.is_finite() {
                Ok(v as i64)
            } else {
                Err(Error::input(path, format!("row {row}: label column holds {v}, not an integer class")))
            }
        })
        .collect()
}

/// The metrics as a short aligned table.
fn table(m: &Metrics) -> String {
    let fraction = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut rows = vec![
        ("samples", m.n.to_string()),
        ("selected", m.k.to_string()),
        ("coverage mean", format!("{:.4}", m.coverage_mean)),
        ("coverage max", format!("{:.4}", m.coverage_max)),
    ];
    if let (Some(present), Some(total)) = (m.classes_present, m.classes_total) {
        rows.push(("classes", format!("{present} of {total}")));
        rows.push(("label entropy", m.label_entropy.map_or("-".into(), |e| format!("{e:.3} bits"))));
        rows.push(("1-NN accuracy", fraction(m.knn1_accuracy)));
        rows.push(("linear accuracy", fraction(m.linear_accuracy)));
    }
    rows.iter().map(|(k, v)| format!("{k:<16} {v}\n")).collect()
}
