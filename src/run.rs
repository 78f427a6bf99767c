//! Runs what the settings ask for: loads the pool, runs a method or the
//! evaluation, writes the results. Outputs are reserved before any work.

use std::path::Path;
use std::time::Instant;

use crate::budget::Budget;
use crate::config::{ActiveFtSettings, EvalSettings, InitChoice, Limit, MethodSettings, SelectSettings, Settings};
use crate::error::{Error, Result};
use crate::eval::{self, Metrics};
use crate::io::features::{self, load_features};
use crate::io::ids::{IdList, Names, selection_bytes};
use crate::io::npy::load_labels;
use crate::io::output::{Output, check_distinct};
use crate::io::report::{Report, ReportParams, Seconds};
use crate::methods::{self, Method, Round, activeft::Scheduler};
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
    let init_path = match &settings.method {
        MethodSettings::ActiveFt(ActiveFtSettings { init: InitChoice::Indices(path), .. })
        | MethodSettings::BiLaf { stage_one: ActiveFtSettings { init: InitChoice::Indices(path), .. }, .. } => {
            Some(path.as_path())
        }
        _ => None,
    };
    let mut inputs = feature_inputs(&settings.pool.features);
    inputs.extend(init_path.map(|p| ("--init-indices", p)));
    inputs.extend(settings.labeled.as_deref().map(|p| ("--labeled", p)));
    inputs.extend(settings.exclude.as_deref().map(|p| ("--exclude", p)));
    inputs.extend(settings.names.as_deref().map(|p| ("--names", p)));
    let outputs: Vec<_> = [("--output", &settings.output), ("--report", &settings.report)]
        .into_iter()
        .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
        .collect();
    check_distinct(&outputs, &inputs)?;
    let sink = Output::create(settings.output.as_deref())?;
    let report_file = settings.report.as_deref().map(|p| Output::create(Some(p))).transpose()?;
    // Cheap to read, so their errors come before the pool loads.
    let names = settings.names.as_deref().map(Names::read).transpose()?;
    let list = |path: Option<&Path>| path.map(|p| IdList::read(p, names.is_some())).transpose();
    let (labeled, excluded, init) =
        (list(settings.labeled.as_deref())?, list(settings.exclude.as_deref())?, list(init_path)?);
    let pool = thread_pool(settings.threads)?;
    pool.install(|| {
        let loaded = load_features(&settings.pool.features, settings.pool.label_column)?;
        let (mut features, provenance) = (loaded.features, loaded.provenance);
        let load_seconds = start.elapsed().as_secs_f64();
        let n = features.nrows();
        if let Some(names) = &names {
            names.check_count(n)?;
        }
        let round = round(n, labeled.as_ref(), excluded.as_ref(), names.as_ref())?;
        let budget = settings.budget.resolve(n)?;
        let left = round.eligible().len();
        if budget > left {
            return Err(Error::usage(
                "--budget",
                format!(
                    "{budget} is more than the {left} samples left to choose from ({} labeled or excluded)",
                    n - left
                ),
            ));
        }
        let init_ids = init.as_ref().map(|list| checked_init(list, n, names.as_ref(), &round)).transpose()?;
        let method = match &settings.method {
            MethodSettings::ActiveFt(a) => Method::ActiveFt(a.params(budget, settings.seed, n, init_ids)?),
            MethodSettings::BiLaf { stage_one, core } => {
                Method::BiLaf(stage_one.params(core_count(*core, budget, n)?, settings.seed, n, init_ids)?)
            }
            MethodSettings::Random => Method::Random,
            MethodSettings::Fds => Method::Fds,
            MethodSettings::KMeans => Method::KMeans,
            MethodSettings::FacLoc { partitions } => Method::FacLoc(at_most_n("--partitions", *partitions, n)?),
            MethodSettings::TypiClust { clusters } => {
                let clusters = clusters.unwrap_or(methods::typiclust::default_clusters(round.labeled.len(), budget));
                Method::TypiClust(at_most_n("--clusters", Some(clusters), n)?.unwrap_or(clusters))
            }
            MethodSettings::ProbCover { delta, purity_classes } => {
                Method::ProbCover { delta: *delta, purity_classes: at_most_n("--purity-classes", *purity_classes, n)? }
            }
        };
        let steps = match &method {
            Method::ActiveFt(params) | Method::BiLaf(params) => params.iterations,
            Method::KMeans => methods::kmeans::MAX_ITERATIONS,
            Method::FacLoc(_) => budget,
            _ => 0,
        };
        let bar = progress::bar(steps as u64, settings.quiet);
        let outcome = methods::run(&method, &mut features, budget, settings.seed, &round, |i, loss| {
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
                picks: outcome.picks,
                init: outcome.init,
                losses: outcome.losses,
                n,
                dim: features.ncols(),
                budget,
                labeled: round.labeled.len(),
                excluded: n - left - round.labeled.len(),
                names: names.as_ref().map(|names| display(names.path())),
                seed: settings.seed,
                method: method.name(),
                features: provenance,
                params: report_params(settings, &method, init_path, n),
                seconds: Seconds {
                    load: load_seconds,
                    optimize: outcome.optimize_seconds,
                    map: outcome.map_seconds,
                    total: start.elapsed().as_secs_f64(),
                },
                work: outcome.work,
                graph: outcome.graph,
                version: env!("CARGO_PKG_VERSION"),
            };
            let mut bytes = serde_json::to_vec_pretty(&report).expect("the report serialises");
            bytes.push(b'\n');
            file.commit(&bytes)?;
        }
        sink.commit(&selection_bytes(&outcome.selected, names.as_ref(), settings.format))
    })
}

/// BiLAF's core count: `--core`, or half the budget; at least 1 and less
/// than the budget, so that both stages pick something.
fn core_count(core: Option<Budget>, budget: usize, n: usize) -> Result<usize> {
    if budget < 2 {
        return Err(Error::usage("--budget", "bilaf needs at least 2: a core sample and a boundary sample"));
    }
    let core = match core {
        Some(core) => core.resolve_for("--core", n)?,
        None => budget / 2,
    };
    if core >= budget {
        return Err(Error::usage("--core", format!("{core} must be less than the budget ({budget})")));
    }
    Ok(core)
}

/// A count a flag sets (parts, clusters, classes), which cannot exceed the pool.
fn at_most_n(flag: &'static str, count: Option<usize>, n: usize) -> Result<Option<usize>> {
    match count {
        Some(c) if c > n => Err(Error::usage(flag, format!("{c} is more than the {n} samples"))),
        _ => Ok(count),
    }
}

/// What came before this round, checked against the pool: labeled and
/// excluded samples in range, each given once, and in one list only.
fn round(n: usize, labeled: Option<&IdList>, excluded: Option<&IdList>, names: Option<&Names>) -> Result<Round> {
    let mut round = Round::first(n);
    if let Some(list) = labeled {
        round.labeled = list.resolve(n, names)?;
        for &i in &round.labeled {
            round.taken[i] = true;
        }
    }
    if let Some(list) = excluded {
        for i in list.resolve(n, names)? {
            if round.taken[i] {
                let labeled = labeled.expect("only labeled samples are taken so far").path().display();
                return Err(Error::input(
                    list.path(),
                    format!("sample {i} is also in the labeled samples ({labeled})"),
                ));
            }
            round.taken[i] = true;
        }
    }
    Ok(round)
}

/// `--init-indices`, resolved; ActiveFT's points must start at samples it may pick.
fn checked_init(list: &IdList, n: usize, names: Option<&Names>, round: &Round) -> Result<Vec<usize>> {
    let ids = list.resolve(n, names)?;
    if let Some(&id) = ids.iter().find(|&&id| round.taken[id]) {
        return Err(Error::input(
            list.path(),
            format!("sample {id} is labeled or excluded; points start at samples left to pick"),
        ));
    }
    Ok(ids)
}

/// The report's `params`: ActiveFT's settings, or nulls for a method
/// that has none.
fn report_params(settings: &SelectSettings, method: &Method, init_path: Option<&Path>, n: usize) -> ReportParams {
    let activeft = match method {
        Method::ActiveFt(params) | Method::BiLaf(params) => Some(params),
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
        init_indices: init_path.map(display),
        batch_size: activeft.and_then(|p| p.effective_batch(n)),
        core: match method {
            Method::BiLaf(params) => Some(params.budget),
            _ => None,
        },
        label_column_dropped: settings.pool.label_column,
        threads: rayon::current_num_threads(),
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn evaluate(settings: &EvalSettings) -> Result<()> {
    let mut inputs = feature_inputs(&settings.pool.features);
    inputs.extend(settings.selections.iter().map(|p| ("--selection", p.as_path())));
    inputs.extend(settings.labeled.as_deref().map(|p| ("--labeled", p)));
    inputs.extend(settings.names.as_deref().map(|p| ("--names", p)));
    inputs.extend(settings.labels.as_deref().map(|p| ("--labels", p)));
    let plot: Vec<_> = settings.plot.as_deref().map(|p| ("--plot", p)).into_iter().collect();
    check_distinct(&plot, &inputs)?;
    let has_labels = settings.labels.is_some() || settings.pool.label_column;
    check_limits(&settings.limits, has_labels)?;
    let plot_file = settings.plot.as_deref().map(|p| Output::create(Some(p))).transpose()?;
    let names = settings.names.as_deref().map(Names::read).transpose()?;
    let lists = settings
        .selections
        .iter()
        .chain(&settings.labeled)
        .map(|p| IdList::read(p, names.is_some()))
        .collect::<Result<Vec<_>>>()?;
    let pool = thread_pool(settings.threads)?;
    pool.install(|| {
        let loaded = load_features(&settings.pool.features, settings.pool.label_column)?;
        let n = loaded.features.nrows();
        if let Some(names) = &names {
            names.check_count(n)?;
        }
        let selected = union(&lists, n, names.as_ref())?;
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
        Output::create(None)?.commit(text.as_bytes())?;
        outside_limits(&metrics, &settings.limits)
    })
}

/// The union of the lists (selections, then what was labeled), ascending;
/// each list on its own must be valid, and the union not empty.
fn union(lists: &[IdList], n: usize, names: Option<&Names>) -> Result<Vec<usize>> {
    let mut ids = Vec::new();
    for list in lists {
        ids.extend(list.resolve(n, names)?);
    }
    if ids.is_empty() {
        return Err(Error::input(lists[0].path(), "is an empty selection"));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Refuses, before any work, a bound on an unknown metric or on one that
/// needs labels when there are none.
fn check_limits(limits: &[Limit], has_labels: bool) -> Result<()> {
    for limit in limits {
        let flag = if limit.at_least { "--min" } else { "--max" };
        if !eval::METRICS.contains(&limit.metric.as_str()) {
            let known = eval::METRICS.join(", ");
            return Err(Error::usage(flag, format!("unknown metric '{}' (one of {known})", limit.metric)));
        }
        if !has_labels && eval::NEEDS_LABELS.contains(&limit.metric.as_str()) {
            return Err(Error::usage(flag, format!("{} needs labels: give --labels or --label-column", limit.metric)));
        }
    }
    Ok(())
}

/// Exit 3 with a line for each metric outside its bound.
fn outside_limits(metrics: &Metrics, limits: &[Limit]) -> Result<()> {
    let values = serde_json::to_value(metrics).expect("metrics serialise");
    let mut failures = Vec::new();
    for limit in limits {
        let flag = if limit.at_least { "--min" } else { "--max" };
        let Some(value) = values[&limit.metric].as_f64() else {
            return Err(Error::usage(
                flag,
                format!("{} is undefined here (no unselected sample to score)", limit.metric),
            ));
        };
        let met = if limit.at_least { value >= limit.value } else { value <= limit.value };
        if !met {
            let side = if limit.at_least { "below" } else { "above" };
            failures.push(format!("{} is {value}, {side} the {flag} {}", limit.metric, limit.value));
        }
    }
    if failures.is_empty() { Ok(()) } else { Err(Error::Limits(failures)) }
}

fn checked_labels(path: &Path, labels: Vec<i64>, n: usize) -> Result<Vec<i64>> {
    if labels.len() != n {
        return Err(Error::input(path, format!("holds {} labels but the pool has {n} samples", labels.len())));
    }
    Ok(labels)
}

/// The dropped label column as integers; a bad value is named by its file and row.
fn integer_column(pool: &features::Pool, column: &[f32]) -> Result<Vec<i64>> {
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
