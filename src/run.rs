//! Runs what the settings ask for: loads the pool, runs a method or the
//! evaluation, writes the results. Outputs are reserved before any work.

use std::path::Path;
use std::time::Instant;

use crate::budget::Budget;
use crate::comm::{Comm, Part};
use crate::config::{
    self, ActiveFtSettings, EvalSettings, InitChoice, Limit, MethodSettings, SelectSettings, Settings,
};
use crate::error::{Error, Result};
use crate::eval::{self, Metrics};
use crate::io::features::{self, load_share};
use crate::io::ids::{IdList, Names, selection_bytes};
use crate::io::npy::load_labels;
use crate::io::output::{Output, check_distinct};
use crate::io::report::{Report, ReportParams, Seconds};
use crate::io::source::{Provenance, is_stdin};
use crate::methods::activeft::{Init, Scheduler};
use crate::methods::{self, Method, Round};
use crate::progress;

/// Runs one invocation, as one of `comm`'s ranks.
pub fn run(settings: &Settings, comm: &Comm) -> Result<()> {
    match settings {
        Settings::Select(s) => select(s, comm),
        Settings::Eval(s) => evaluate(s, comm),
    }
}

/// What cannot run across ranks is refused before anything is read.
fn check_spread(comm: &Comm, method: Option<&MethodSettings>) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    match method {
        Some(MethodSettings::ActiveFt(_)) | None => Ok(()),
        Some(_) => Err(Error::usage(
            "--method",
            format!(
                "only activeft (and eval) run across MPI ranks; run this method in one process, not under mpirun -n {}",
                comm.size()
            ),
        )),
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

fn select(settings: &SelectSettings, comm: &Comm) -> Result<()> {
    let start = Instant::now();
    check_spread(comm, Some(&settings.method))?;
    let init_path = init_path(&settings.method);
    check_select_paths(settings, init_path, comm)?;
    let early = comm.agree(open_early(settings, init_path, comm))?;
    let pool = thread_pool(settings.threads)?;
    // Only rank 0 shows progress.
    let quiet = settings.quiet || !comm.is_root();
    pool.install(|| {
        let loading = progress::spinner("loading", quiet);
        let ready = load_round(settings, comm, &early);
        loading.finish_and_clear();
        let (share, round, budget) = comm.agree(ready)?;
        let provenance = provenance(comm, share.pool.provenance);
        let mut features = share.pool.features;
        let part = Part { comm, first: share.first, rows: features.nrows(), n: share.n };
        let load_seconds = start.elapsed().as_secs_f64();
        let n = share.n;
        let left = round.left();
        let names = early.names.as_ref();
        let init_ids = early.init.as_ref().map(|list| checked_init(list, n, names, &round)).transpose()?;
        let method = method(settings, budget, n, &round, init_ids)?;
        let outcome = run_with_bar(&method, &mut features, budget, settings.seed, &round, &part, quiet)?;
        let Some(sink) = early.sink else {
            return Ok(());
        };
        if let Some(file) = early.report {
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
                names: names.map(|names| display(names.path())),
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
        sink.commit(&selection_bytes(&outcome.selected, names, settings.format))?;
        let summary = format!(
            "activeft: selected {} of {n} samples with {} in {:.1} s; ids to {}",
            outcome.selected.len(),
            method.name(),
            start.elapsed().as_secs_f64(),
            destinations(settings),
        );
        progress::summary(settings.quiet, &summary);
        Ok(())
    })
}

/// The `--init-indices` file, for the methods that take one.
fn init_path(method: &MethodSettings) -> Option<&Path> {
    match method {
        MethodSettings::ActiveFt(ActiveFtSettings { init: InitChoice::Indices(path), .. })
        | MethodSettings::BiLaf { stage_one: ActiveFtSettings { init: InitChoice::Indices(path), .. }, .. } => {
            Some(path.as_path())
        }
        _ => None,
    }
}

/// Refuses standard input given to two inputs, and an output that is also
/// an input or the other output.
fn check_select_paths(settings: &SelectSettings, init_path: Option<&Path>, comm: &Comm) -> Result<()> {
    let mut inputs = feature_inputs(&settings.pool.features);
    inputs.extend(init_path.map(|p| ("--init-indices", p)));
    inputs.extend(settings.labeled.as_deref().map(|p| ("--labeled", p)));
    inputs.extend(settings.exclude.as_deref().map(|p| ("--exclude", p)));
    inputs.extend(settings.names.as_deref().map(|p| ("--names", p)));
    let outputs: Vec<_> = [("--output", &settings.output), ("--report", &settings.report)]
        .into_iter()
        .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
        .collect();
    check_stdin(comm, &inputs)?;
    check_distinct(&outputs, &inputs)
}

/// Standard input (`-`) feeds one input, in one process (under MPI,
/// ranks do not share it).
fn check_stdin(comm: &Comm, inputs: &[(&'static str, &Path)]) -> Result<()> {
    let mut readers = inputs.iter().filter(|(_, p)| is_stdin(p)).map(|&(flag, _)| flag);
    let Some(first) = readers.next() else { return Ok(()) };
    if comm.size() > 1 {
        return Err(Error::usage(first, "standard input (-) cannot be split across MPI ranks"));
    }
    match readers.next() {
        Some(second) if second == first => Err(Error::usage(first, "standard input (-) can be given only once")),
        Some(second) => Err(Error::usage(second, format!("standard input (-) is already given to {first}"))),
        None => Ok(()),
    }
}

/// What `select` opens before the pool: the outputs, reserved (by rank 0,
/// the only one that writes), and the id lists (read by every rank).
struct Early {
    sink: Option<Output>,
    report: Option<Output>,
    names: Option<Names>,
    labeled: Option<IdList>,
    excluded: Option<IdList>,
    init: Option<IdList>,
}

/// Opens [`Early`]: cheap to read, so their errors come before the pool loads.
fn open_early(settings: &SelectSettings, init_path: Option<&Path>, comm: &Comm) -> Result<Early> {
    let sink = comm.is_root().then(|| Output::create(settings.output.as_deref())).transpose()?;
    let report = settings.report.as_deref().filter(|_| comm.is_root()).map(|p| Output::create(Some(p))).transpose()?;
    let names = settings.names.as_deref().map(Names::read).transpose()?;
    let list = |path: Option<&Path>| path.map(|p| IdList::read(p, names.is_some())).transpose();
    let (labeled, excluded, init) =
        (list(settings.labeled.as_deref())?, list(settings.exclude.as_deref())?, list(init_path)?);
    Ok(Early { sink, report, names, labeled, excluded, init })
}

/// This rank's share of the pool, with as many `--names` as samples.
fn load_named_share(pool: &config::Pool, comm: &Comm, names: Option<&Names>) -> Result<features::Share> {
    let share = load_share(&pool.features, pool.label_column, comm.rank(), comm.size())?;
    if let Some(names) = names {
        names.check_count(share.n)?;
    }
    Ok(share)
}

/// This rank's share of the pool, the round it is in, and the budget, which
/// must leave enough samples to choose from.
fn load_round(settings: &SelectSettings, comm: &Comm, early: &Early) -> Result<(features::Share, Round, usize)> {
    let share = load_named_share(&settings.pool, comm, early.names.as_ref())?;
    let n = share.n;
    let round = round(n, early.labeled.as_ref(), early.excluded.as_ref(), early.names.as_ref())?;
    let budget = settings.budget.resolve(n)?;
    let left = round.left();
    if budget > left {
        let taken = n - left;
        let msg = format!("{budget} is more than the {left} samples left to choose from ({taken} labeled or excluded)");
        return Err(Error::usage("--budget", msg));
    }
    Ok((share, round, budget))
}

/// The method the settings name, with its parameters checked against a
/// pool of `n` samples.
fn method(
    settings: &SelectSettings,
    budget: usize,
    n: usize,
    round: &Round,
    init_ids: Option<Vec<usize>>,
) -> Result<Method> {
    Ok(match &settings.method {
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
    })
}

/// Runs `method` with a progress bar over its steps; a loss that is no
/// longer finite is an error, not a selection.
fn run_with_bar(
    method: &Method,
    features: &mut ndarray::Array2<f32>,
    budget: usize,
    seed: u64,
    round: &Round,
    part: &Part,
    quiet: bool,
) -> Result<methods::Outcome> {
    let phases = phases(method, budget);
    let bar = progress::bar(phases.steps as u64, phases.before, phases.even, quiet);
    let outcome = methods::run_part(method, features, budget, seed, round, part, |i, value| {
        // The step without a redraw, then its figure: no frame pairs a
        // step with another step's figure.
        bar.update(|state| state.set_pos(i as u64 + 1));
        bar.set_message(format!("{} {}", phases.measure, progress::figure(value)));
        bar.set_prefix(if i + 1 == phases.steps { phases.after } else { phases.during });
    })?;
    bar.finish_and_clear();
    if outcome.losses.iter().any(|l| !l.is_finite()) {
        return Err(Error::Internal("the loss became non-finite; try a smaller --lr".into()));
    }
    Ok(outcome)
}

/// What the progress bar shows of a method.
struct Phases {
    /// Steps counted: iterations or picks.
    steps: usize,
    /// The phases before the first step, between steps and after the last.
    before: &'static str,
    during: &'static str,
    after: &'static str,
    /// What the value reported at each step measures.
    measure: &'static str,
    /// Whether steps take about equal time (not facloc's picks: the first
    /// ones cost most of the run), so that an estimate of the time left
    /// means something.
    even: bool,
}

fn phases(method: &Method, budget: usize) -> Phases {
    let (steps, before, during, after, measure) = match method {
        Method::ActiveFt(params) | Method::BiLaf(params) => {
            let before = if params.init == Init::Fps { "fps init" } else { "first scan" };
            let after = if matches!(method, Method::BiLaf(_)) { "boundaries" } else { "mapping" };
            (params.iterations, before, "optimizing", after, "loss")
        }
        Method::KMeans => (methods::kmeans::MAX_ITERATIONS, "seeding", "optimizing", "mapping", "distance"),
        Method::FacLoc(None) => (budget, "first pick", "picking", "picking", "objective"),
        Method::FacLoc(Some(_)) => (budget, "partitioning", "picking", "picking", "objective"),
        _ => (0, "selecting", "selecting", "selecting", ""),
    };
    Phases { steps, before, during, after, measure, even: !matches!(method, Method::FacLoc(_)) }
}

/// Where the ids went, and the report if there is one, for the summary line.
fn destinations(settings: &SelectSettings) -> String {
    let to = settings.output.as_deref().map_or_else(|| "stdout".to_string(), display);
    let report = settings.report.as_deref().map(|p| format!(", report in {}", display(p))).unwrap_or_default();
    format!("{to}{report}")
}

/// Each input's provenance as rank 0 reports it: a file one rank read
/// whole gets that rank's hash; a file split across ranks gets none.
fn provenance(comm: &Comm, mine: Vec<Provenance>) -> Vec<Provenance> {
    if comm.size() == 1 {
        return mine;
    }
    // Per input: whether read whole, the bytes read, the hash's 32 bytes as 4 words.
    let words: Vec<u64> = mine
        .iter()
        .flat_map(|p| {
            let hash = p.blake3.as_deref().and_then(|h| blake3::Hash::from_hex(h).ok());
            let bytes = hash.map_or([0u8; 32], |h| *h.as_bytes());
            let mut w = vec![u64::from(hash.is_some()), p.bytes];
            w.extend(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))));
            w
        })
        .collect();
    let all = comm.gather(&words);
    let per_rank = words.len();
    mine.into_iter()
        .enumerate()
        .map(|(s, mut p)| {
            let from = (0..comm.size()).map(|r| &all[r * per_rank + s * 6..r * per_rank + s * 6 + 6]);
            let whole = from.clone().find(|w| w[0] == 1);
            p.bytes = whole.map_or_else(|| from.map(|w| w[1]).sum(), |w| w[1]);
            p.blake3 = whole.map(|w| {
                let bytes: Vec<u8> = w[2..].iter().flat_map(|x| x.to_le_bytes()).collect();
                blake3::Hash::from_bytes(bytes.try_into().expect("32 bytes")).to_hex().to_string()
            });
            p
        })
        .collect()
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

fn evaluate(settings: &EvalSettings, comm: &Comm) -> Result<()> {
    check_spread(comm, None)?;
    if comm.size() > 1 && settings.plot.is_some() {
        return Err(Error::usage("--plot", "needs the whole pool in one process; run eval --plot without mpirun"));
    }
    check_eval_paths(settings, comm)?;
    let has_labels = settings.labels.is_some() || settings.pool.label_column;
    check_limits(&settings.limits, has_labels)?;
    let ready = (|| {
        let plot_file = settings.plot.as_deref().map(|p| Output::create(Some(p))).transpose()?;
        let names = settings.names.as_deref().map(Names::read).transpose()?;
        let lists = settings
            .selections
            .iter()
            .chain(&settings.labeled)
            .map(|p| IdList::read(p, names.is_some()))
            .collect::<Result<Vec<_>>>()?;
        Ok((plot_file, names, lists))
    })();
    let (plot_file, names, lists) = comm.agree(ready)?;
    let pool = thread_pool(settings.threads)?;
    let quiet = settings.quiet || !comm.is_root();
    pool.install(|| {
        let loading = progress::spinner("loading", quiet);
        let loaded = load_evaluated(settings, comm, names.as_ref(), &lists);
        loading.finish_and_clear();
        let (share, selected, labels) = comm.agree(loaded)?;
        let part = Part { comm, first: share.first, rows: share.pool.features.nrows(), n: share.n };
        // A label column arrives in pieces, one per rank.
        let labels = match (&settings.labels, labels) {
            (None, Some(column)) if comm.size() > 1 => {
                let values: Vec<f64> = column.iter().map(|&l| l as f64).collect();
                Some(comm.gather(&values).into_iter().map(|l| l as i64).collect::<Vec<i64>>())
            }
            (_, labels) => labels,
        };
        let features = share.pool.features.view();
        let evaluating = progress::spinner("evaluating", quiet);
        let metrics = eval::evaluate_part(features, &part, &selected, labels.as_deref());
        evaluating.finish_and_clear();
        if !comm.is_root() {
            return Ok(());
        }
        if let Some(file) = plot_file {
            let title = format!("{} selected of {}", selected.len(), part.n);
            file.commit(eval::plot::svg(features, &selected, &title).as_bytes())?;
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

/// Refuses standard input given to two inputs, and a plot that would
/// overwrite an input.
fn check_eval_paths(settings: &EvalSettings, comm: &Comm) -> Result<()> {
    let mut inputs = feature_inputs(&settings.pool.features);
    inputs.extend(settings.selections.iter().map(|p| ("--selection", p.as_path())));
    inputs.extend(settings.labeled.as_deref().map(|p| ("--labeled", p)));
    inputs.extend(settings.names.as_deref().map(|p| ("--names", p)));
    inputs.extend(settings.labels.as_deref().map(|p| ("--labels", p)));
    let plot: Vec<_> = settings.plot.as_deref().map(|p| ("--plot", p)).into_iter().collect();
    check_stdin(comm, &inputs)?;
    check_distinct(&plot, &inputs)
}

/// This rank's share of the pool, the selected samples and the labels
/// (this rank's piece of a label column).
fn load_evaluated(
    settings: &EvalSettings,
    comm: &Comm,
    names: Option<&Names>,
    lists: &[IdList],
) -> Result<(features::Share, Vec<usize>, Option<Vec<i64>>)> {
    let share = load_named_share(&settings.pool, comm, names)?;
    let n = share.n;
    let selected = union(lists, n, names)?;
    let labels = match (&settings.labels, &share.pool.label_column) {
        (Some(path), _) => Some(checked_labels(path, load_labels(path)?, n)?),
        (None, Some(column)) => Some(integer_column(&share.pool, column)?),
        (None, None) => None,
    };
    Ok((share, selected, labels))
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
