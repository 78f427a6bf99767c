//! Runs what the settings ask for: loads the pool, runs a method or the
//! evaluation, writes the results. Outputs are reserved before any work.

use std::path::Path;
use std::time::Instant;

use crate::config::{EvalSettings, InitChoice, MethodSettings, SelectSettings, Settings};
use crate::error::{Error, Result};
use crate::eval::{self, Metrics};
use crate::io::ids::{read_index_list, selection_json};
use crate::io::npy::{self, load_features, load_labels};
use crate::io::output::{Output, check_distinct};
use crate::io::report::{Report, ReportParams, Seconds};
use crate::methods::{self, Method, activeft::Scheduler};
use crate::progress;

/// Runs one invocation.
pub fn run(settings: &Settings) -> Result<()> {
    match settings {
        Settings::Select(s) => select(s),
        Settings::Eval(s) => evaluate(s),
    }
}

fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))
}

/// Each feature file as an input, for [`check_distinct`].
fn feature_inputs(features: &[std::path::PathBuf]) -> Vec<(&'static str, &Path)> {
    features.iter().map(|p| ("--features", p.as_path())).collect()
}

fn select(settings: &SelectSettings) -> Result<()> {
    let start = Instant::now();
    let mut inputs = feature_inputs(&settings.pool.features);
    let init_path = match &settings.method {
        MethodSettings::ActiveFt(a) => match &a.init {
            InitChoice::Indices(path) => Some(path.as_path()),
            _ => None,
        },
        _ => None,
    };
    inputs.extend(init_path.map(|p| ("--init-indices", p)));
    let outputs: Vec<_> = [("--output", &settings.output), ("--report", &settings.report)]
        .into_iter()
        .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
        .collect();
    check_distinct(&outputs, &inputs)?;
    let sink = Output::create(settings.output.as_deref())?;
    let report_file = settings.report.as_deref().map(|p| Output::create(Some(p))).transpose()?;
    // Cheap to read, so its errors come before the pool loads.
    let init_ids = init_path.map(read_index_list).transpose()?;
    let pool = thread_pool(settings.threads)?;
    pool.install(|| {
        let mut features = load_features(&settings.pool.features, settings.pool.label_column)?.features;
        let load_seconds = start.elapsed().as_secs_f64();
        let n = features.nrows();
        let budget = settings.budget.resolve(n)?;
        let method = match &settings.method {
            MethodSettings::ActiveFt(a) => Method::ActiveFt(a.params(budget, settings.seed, n, init_ids)?),
            MethodSettings::Random => Method::Random,
            MethodSettings::Fds => Method::Fds,
            MethodSettings::KMeans => Method::KMeans,
        };
        let steps = match &method {
            Method::ActiveFt(params) => params.iterations,
            Method::KMeans => methods::kmeans::MAX_ITERATIONS,
            _ => 0,
        };
        let bar = progress::bar(steps as u64, settings.quiet);
        let outcome = methods::run(&method, &mut features, budget, settings.seed, |i, loss| {
            bar.set_position(i as u64 + 1);
            bar.set_message(format!("{loss:.6}"));
        })?;
        bar.finish_and_clear();
        if outcome.losses.iter().any(|l| !l.is_finite()) {
            return Err(Error::Internal("the loss became non-finite; try a smaller --lr".into()));
        }
        if let Some(file) = report_file {
            let report = Report {
                selected: outcome.selected.clone(),
                init: outcome.init,
                losses: outcome.losses,
                n,
                dim: features.ncols(),
                budget,
                seed: settings.seed,
                method: method.name(),
                features: settings.pool.features.iter().map(|p| display(p)).collect(),
                params: report_params(settings, &method, n),
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
        sink.commit(&selection_json(&outcome.selected))
    })
}

/// The report's `params`: ActiveFT's settings, or nulls for a method
/// that has none.
fn report_params(settings: &SelectSettings, method: &Method, n: usize) -> ReportParams {
    let activeft = match method {
        Method::ActiveFt(params) => Some(params),
        _ => None,
    };
    let init_indices = match &settings.method {
        MethodSettings::ActiveFt(a) => match &a.init {
            InitChoice::Indices(path) => Some(display(path)),
            _ => None,
        },
        _ => None,
    };
    ReportParams {
        iterations: activeft.map(|p| p.iterations),
        lr: activeft.map(|p| p.lr),
        temperature: activeft.map(|p| p.temperature),
        balance: activeft.map(|p| p.balance),
        scheduler: activeft.map(|p| match p.scheduler {
            Scheduler::Constant => "none",
            Scheduler::Cosine => "cosine",
        }),
        init: activeft.map(|p| match p.init {
            methods::activeft::Init::Random => "random",
            methods::activeft::Init::Fps => "fps",
            methods::activeft::Init::Indices(_) => "indices",
        }),
        init_indices,
        batch_size: activeft.and_then(|p| p.effective_batch(n)),
        label_column_dropped: settings.pool.label_column,
        threads: rayon::current_num_threads(),
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn evaluate(settings: &EvalSettings) -> Result<()> {
    let mut inputs = feature_inputs(&settings.pool.features);
    inputs.push(("--selection", settings.selection.as_path()));
    inputs.extend(settings.labels.as_deref().map(|p| ("--labels", p)));
    let plot: Vec<_> = settings.plot.as_deref().map(|p| ("--plot", p)).into_iter().collect();
    check_distinct(&plot, &inputs)?;
    let plot_file = settings.plot.as_deref().map(|p| Output::create(Some(p))).transpose()?;
    let selection = read_index_list(&settings.selection)?;
    let pool = thread_pool(settings.threads)?;
    pool.install(|| {
        let loaded = load_features(&settings.pool.features, settings.pool.label_column)?;
        let n = loaded.features.nrows();
        let selected = check_selection(&settings.selection, selection, n)?;
        let labels = match (&settings.labels, &loaded.label_column) {
            (Some(path), _) => Some(checked_labels(path, load_labels(path)?, n)?),
            (None, Some(column)) => Some(integer_column(&loaded, column)?),
            (None, None) => None,
        };
        let metrics = eval::evaluate(loaded.features.view(), &selected, labels.as_deref());
        if let Some(file) = plot_file {
            let title = format!("{} selected of {n}", selected.len());
            file.commit(eval::plot::svg(loaded.features.view(), &selected, &title).as_bytes())?;
        }
        let text = if settings.json {
            let mut line = serde_json::to_string(&metrics).expect("metrics serialise");
            line.push('\n');
            line
        } else {
            table(&metrics)
        };
        Output::create(None)?.commit(text.as_bytes())
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

/// The dropped label column as integers; a bad value is named by its file and row.
fn integer_column(pool: &npy::Pool, column: &[f32]) -> Result<Vec<i64>> {
    column
        .iter()
        .enumerate()
        .map(|(row, &v)| {
            if v.fract() == 0.0 && v.is_finite() {
                Ok(v as i64)
            } else {
                Err(pool.row_error(row, format!("holds {v} in its label column, not an integer class")))
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
