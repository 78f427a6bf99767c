//! The command line: clap definitions, converted once into plain
//! [`crate::config`] settings so nothing below sees clap types. Defaults
//! come from the layers that own them, so `--help` shows the values used.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::budget::Budget;
use crate::config::{self, ActiveFtSettings, EvalSettings, InitChoice, MethodSettings, SelectSettings, Settings};
use crate::error::{Error, Result};
use crate::methods::activeft::Scheduler;
use crate::methods::activeft::params::defaults;

#[derive(Debug, Parser)]
#[command(name = "activeft", version, about, long_about = None)]
#[command(after_help = "Example: activeft select --features feats.npy --budget 1000 > selected.json")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Choose which samples to annotate; prints their ids as a JSON list
    Select(SelectArgs),
    /// Judge a selection: coverage of the pool and, with labels, accuracy
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Features as .npy, as given to select; repeat for shards
    #[arg(long, value_name = "PATH", required = true)]
    pub features: Vec<PathBuf>,

    /// The selection to judge (select's output: ids or names, JSON or one per line; - for stdin); repeat for a union
    #[arg(long, value_name = "PATH", required = true)]
    pub selection: Vec<PathBuf>,

    /// Samples already labeled: judged together with the selection
    #[arg(long, value_name = "PATH")]
    pub labeled: Option<PathBuf>,

    /// One name per sample (as given to select), so lists may use names
    #[arg(long, value_name = "PATH")]
    pub names: Option<PathBuf>,

    /// Fail (exit 3) unless METRIC is at least VALUE, e.g. --min knn1_accuracy=0.8; repeatable
    #[arg(long, value_name = "METRIC=VALUE", value_parser = parse_limit)]
    pub min: Vec<(String, f64)>,

    /// Fail (exit 3) unless METRIC is at most VALUE, e.g. --max coverage_mean=0.3; repeatable
    #[arg(long, value_name = "METRIC=VALUE", value_parser = parse_limit)]
    pub max: Vec<(String, f64)>,

    /// Integer class labels, one per sample (.npy) [default: the label column, if dropped]
    #[arg(long, value_name = "PATH")]
    pub labels: Option<PathBuf>,

    /// The last column of the feature files is the label
    #[arg(long, value_enum, value_name = "WHICH")]
    pub label_column: Option<LabelColumn>,

    /// Print one JSON object instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also draw the pool and the selection on their first two principal components (SVG)
    #[arg(long, value_name = "OUT.svg")]
    pub plot: Option<PathBuf>,

    /// Worker threads; the output does not depend on it [default: all cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// No progress
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct SelectArgs {
    /// Features as .npy (float32/float64, samples x dims); repeat for shards, concatenated in order
    #[arg(long, value_name = "PATH", required = true)]
    pub features: Vec<PathBuf>,

    /// How many samples to select: a count (1000) or a percentage of the pool (2%, rounded down)
    #[arg(long, value_name = "N|P%")]
    pub budget: Budget,

    /// Selection method: ActiveFT, BiLAF (ActiveFT's picks as class centres, then boundary
    /// samples), a baseline (random, farthest-point, spherical k-means), facility location
    /// (the exact greedy on eval's coverage), TypiClust or ProbCover.
    /// The settings marked ActiveFT are refused with any method but activeft and bilaf
    #[arg(long, value_enum, default_value_t = MethodArg::Activeft)]
    pub method: MethodArg,

    /// Write the selection to PATH instead of stdout (whole or not at all)
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// How to print the selection: a JSON list, or one entry per line
    #[arg(long, value_enum, default_value_t = FormatArg::Json)]
    pub format: FormatArg,

    /// Samples already annotated (ids or names, JSON or one per line): never picked again
    #[arg(long, value_name = "PATH")]
    pub labeled: Option<PathBuf>,

    /// Samples never to pick (they still count as part of the pool)
    #[arg(long, value_name = "PATH")]
    pub exclude: Option<PathBuf>,

    /// One name per sample, in pool order: the output lists names, and lists may use them
    #[arg(long, value_name = "PATH")]
    pub names: Option<PathBuf>,

    /// Also write a JSON report: losses, settings, timings
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// ActiveFT: optimisation steps
    #[arg(long, default_value_t = defaults::ITERATIONS, value_name = "N")]
    pub iterations: usize,

    /// ActiveFT: adam learning rate
    #[arg(long, default_value_t = defaults::LR, value_name = "LR")]
    pub lr: f64,

    /// ActiveFT: temperature t of the loss; any t > 0 is numerically stable
    #[arg(long, default_value_t = defaults::TEMPERATURE, value_name = "T")]
    pub temperature: f64,

    /// ActiveFT: weight b of the diversity term
    #[arg(long, default_value_t = defaults::BALANCE, value_name = "B")]
    pub balance: f64,

    /// ActiveFT: learning-rate schedule (cosine: down to 1e-6 over the iterations)
    #[arg(long, value_enum, default_value_t = SchedulerArg::None)]
    pub scheduler: SchedulerArg,

    /// ActiveFT: how the points start: random samples or farthest-point sampling
    #[arg(long, value_enum, default_value_t = InitArg::Random)]
    pub init: InitArg,

    /// ActiveFT: start the points at these sample ids (a JSON list, in point order); overrides --init
    #[arg(long, value_name = "PATH", conflicts_with = "init")]
    pub init_indices: Option<PathBuf>,

    /// ActiveFT: evaluate each iteration on a fresh random batch of N samples [default: the whole pool]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Drop this column of the feature files (where the label is kept)
    #[arg(long, value_enum, value_name = "WHICH")]
    pub label_column: Option<LabelColumn>,

    /// bilaf: core samples ActiveFT picks first, a count or a share of the pool
    /// [default: half the budget]
    #[arg(long, value_name = "N|P%")]
    pub core: Option<Budget>,

    /// probcover: the balls' radius δ (Euclidean, between unit rows)
    #[arg(long, value_name = "D")]
    pub delta: Option<f64>,

    /// probcover: choose δ by 95% pure balls over C k-means pseudo-classes instead of --delta
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "delta")]
    pub purity_classes: Option<u32>,

    /// typiclust: k-means clusters [default: labeled + budget, at most 500]
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..))]
    pub clusters: Option<u32>,

    /// facloc: split the pool into P k-means parts and run the exact greedy in each (an approximation)
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: Option<u32>,

    /// Seed for every random choice (initial points, batches, seeds, draws)
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Worker threads; the output does not depend on it [default: all cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// No progress bar
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Activeft,
    Bilaf,
    Random,
    Fds,
    Kmeans,
    Facloc,
    Typiclust,
    Probcover,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Json,
    Lines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchedulerArg {
    None,
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    Random,
    Fps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelColumn {
    Last,
}

/// What parsing decided: run these settings, or stop with this exit code
/// (after `--help`, `--version` or a usage error, already printed).
pub enum Parsed {
    Run(Box<Settings>),
    Exit(i32),
}

/// Parses the process's command line into settings. Usage errors print one
/// line and stop with 2; `--help` and `--version` print and stop with 0.
pub fn parse() -> Parsed {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return Parsed::Exit(clap_exit(e)),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return Parsed::Exit(clap_exit(e)),
    };
    let settings = match cli.command {
        Command::Select(args) => {
            let given = matches.subcommand_matches("select").expect("the select subcommand matched");
            select_settings(args, given).map(Settings::Select)
        }
        Command::Eval(args) => eval_settings(args).map(Settings::Eval),
    };
    match settings {
        Ok(settings) => Parsed::Run(Box::new(settings)),
        Err(e) => Parsed::Exit(e.report()),
    }
}

fn clap_exit(e: clap::Error) -> i32 {
    if !e.use_stderr() {
        let _ = e.print();
        return 0;
    }
    let color = std::io::stderr().is_terminal();
    let text = if color { e.render().ansi().to_string() } else { e.render().to_string() };
    eprintln!("activeft: {}", first_paragraph(&text));
    2
}

/// ActiveFT's own flags, as clap names them and as the user types them.
const ACTIVEFT_FLAGS: [(&str, &str); 8] = [
    ("iterations", "--iterations"),
    ("lr", "--lr"),
    ("temperature", "--temperature"),
    ("balance", "--balance"),
    ("scheduler", "--scheduler"),
    ("init", "--init"),
    ("init_indices", "--init-indices"),
    ("batch_size", "--batch-size"),
];

/// The settings of `select`; a method's own flag given to another method is
/// refused, since it would silently do nothing.
fn select_settings(args: SelectArgs, given: &ArgMatches) -> Result<SelectSettings> {
    refuse_other_methods_settings(args.method, given)?;
    let method = method_settings(&args)?;
    Ok(SelectSettings {
        pool: config::Pool { features: args.features, label_column: args.label_column.is_some() },
        method,
        budget: args.budget,
        seed: args.seed,
        threads: args.threads.map(usize::from),
        output: args.output.filter(|p| !is_stdout(p)),
        report: not_stdout("--report", args.report, "the selection")?,
        quiet: args.quiet,
        labeled: args.labeled,
        exclude: args.exclude,
        names: args.names,
        format: match args.format {
            FormatArg::Json => config::Format::Json,
            FormatArg::Lines => config::Format::Lines,
        },
    })
}

/// A setting of one method given on the command line with another is an
/// error, not silently ignored.
fn refuse_other_methods_settings(method: MethodArg, given: &ArgMatches) -> Result<()> {
    let on_command_line = |id: &str| given.value_source(id) == Some(ValueSource::CommandLine);
    let owned = [
        ("partitions", "--partitions", MethodArg::Facloc),
        ("core", "--core", MethodArg::Bilaf),
        ("clusters", "--clusters", MethodArg::Typiclust),
        ("delta", "--delta", MethodArg::Probcover),
        ("purity_classes", "--purity-classes", MethodArg::Probcover),
    ];
    for (id, flag, owner) in owned {
        if method != owner && on_command_line(id) {
            return Err(Error::usage(flag, format!("is a setting of --method {}", method_name(owner))));
        }
    }
    if matches!(method, MethodArg::Activeft | MethodArg::Bilaf) {
        return Ok(());
    }
    let name = method_name(method);
    match ACTIVEFT_FLAGS.iter().find(|(id, _)| on_command_line(id)) {
        Some((_, flag)) => Err(Error::usage(
            flag,
            format!("is a setting of --method activeft (and bilaf); --method {name} does not use it"),
        )),
        None => Ok(()),
    }
}

/// A method's name as `--method` spells it.
fn method_name(method: MethodArg) -> String {
    method.to_possible_value().expect("no method is skipped").get_name().to_string()
}

/// ActiveFT's settings, also BiLAF's first stage.
fn stage_one(args: &SelectArgs) -> ActiveFtSettings {
    ActiveFtSettings {
        iterations: args.iterations,
        lr: args.lr,
        temperature: args.temperature,
        balance: args.balance,
        scheduler: match args.scheduler {
            SchedulerArg::None => Scheduler::Constant,
            SchedulerArg::Cosine => Scheduler::Cosine,
        },
        init: match (&args.init_indices, args.init) {
            (Some(path), _) => InitChoice::Indices(path.clone()),
            (None, InitArg::Random) => InitChoice::Random,
            (None, InitArg::Fps) => InitChoice::Fps,
        },
        batch_size: args.batch_size,
    }
}

/// The method and the settings it takes.
fn method_settings(args: &SelectArgs) -> Result<MethodSettings> {
    Ok(match args.method {
        MethodArg::Activeft => MethodSettings::ActiveFt(stage_one(args)),
        MethodArg::Bilaf => MethodSettings::BiLaf { stage_one: stage_one(args), core: args.core },
        MethodArg::Random => MethodSettings::Random,
        MethodArg::Fds => MethodSettings::Fds,
        MethodArg::Kmeans => MethodSettings::KMeans,
        MethodArg::Facloc => MethodSettings::FacLoc { partitions: args.partitions.map(|p| p as usize) },
        MethodArg::Typiclust => MethodSettings::TypiClust { clusters: args.clusters.map(|c| c as usize) },
        MethodArg::Probcover => {
            if args.delta.is_none() && args.purity_classes.is_none() {
                return Err(Error::usage("--method", "probcover needs --delta D or --purity-classes C"));
            }
            if let Some(d) = args.delta.filter(|d| !(d.is_finite() && *d > 0.0)) {
                return Err(Error::usage("--delta", format!("must be a positive number, got {d}")));
            }
            MethodSettings::ProbCover { delta: args.delta, purity_classes: args.purity_classes.map(|c| c as usize) }
        }
    })
}

/// `-` as an output is standard output: `-o -` is the default.
fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// An output that must not go to standard output, which carries `what`.
fn not_stdout(flag: &'static str, path: Option<PathBuf>, what: &str) -> Result<Option<PathBuf>> {
    match path {
        Some(p) if is_stdout(&p) => Err(Error::usage(flag, format!("standard output (-) carries {what}; give a file"))),
        other => Ok(other),
    }
}

fn eval_settings(args: EvalArgs) -> Result<EvalSettings> {
    Ok(EvalSettings {
        pool: config::Pool { features: args.features, label_column: args.label_column.is_some() },
        selections: args.selection,
        labeled: args.labeled,
        names: args.names,
        labels: args.labels,
        json: args.json,
        plot: not_stdout("--plot", args.plot, "the metrics")?,
        threads: args.threads.map(usize::from),
        quiet: args.quiet,
        limits: (args.min.into_iter().map(|l| (l, true)))
            .chain(args.max.into_iter().map(|l| (l, false)))
            .map(|((metric, value), at_least)| config::Limit { metric, value, at_least })
            .collect(),
    })
}

/// `METRIC=VALUE`, as `--min` and `--max` take it.
fn parse_limit(text: &str) -> std::result::Result<(String, f64), String> {
    let (metric, value) = text.split_once('=').ok_or("expected METRIC=VALUE, e.g. knn1_accuracy=0.8")?;
    let value: f64 = value.trim().parse().map_err(|_| format!("'{value}' is not a number"))?;
    if !value.is_finite() {
        return Err(format!("'{value}' is not a finite number"));
    }
    Ok((metric.trim().to_string(), value))
}

/// Clap's messages span several lines (the problem, then usage hints);
/// keep the problem, on one line.
fn first_paragraph(text: &str) -> String {
    let text = text.trim_start().strip_prefix("error: ").unwrap_or(text);
    text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        // Every ActiveFT flag named in the refusal exists under that id.
        let command = Cli::command();
        let select = command.find_subcommand("select").unwrap();
        for (id, flag) in ACTIVEFT_FLAGS {
            let arg = select.get_arguments().find(|a| a.get_id() == id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(format!("--{}", arg.get_long().unwrap()), flag);
        }
    }

    #[test]
    fn usage_errors_fold_to_one_line() {
        let text =
            "error: the following required arguments were not provided:\n  --budget <N|P%>\n\nUsage: activeft select\n";
        assert_eq!(first_paragraph(text), "the following required arguments were not provided: --budget <N|P%>");
    }
}
