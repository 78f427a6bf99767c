//! The command line: clap definitions, converted once into plain
//! [`crate::config`] structs so nothing else sees clap types.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Budget;

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

    /// The selection to judge: a JSON list of sample ids (select's output)
    #[arg(long, value_name = "PATH")]
    pub selection: PathBuf,

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

    /// Selection method: ActiveFT, or a baseline (random, farthest-point, spherical k-means)
    #[arg(long, value_enum, default_value_t = MethodArg::Activeft)]
    pub method: MethodArg,

    /// Write the selection to PATH (atomically) instead of stdout
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Also write a JSON report: losses, settings, timings
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Optimisation steps
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub iterations: usize,

    /// Adam learning rate
    #[arg(long, default_value_t = 0.001, value_name = "LR")]
    pub lr: f64,

    /// Temperature t of the loss; any t > 0 is numerically stable
    #[arg(long, default_value_t = 0.07, value_name = "T")]
    pub temperature: f64,

    /// Weight b of the diversity term
    #[arg(long, default_value_t = 1.0, value_name = "B")]
    pub balance: f64,

    /// Learning-rate schedule (cosine: down to 1e-6 over the iterations)
    #[arg(long, value_enum, default_value_t = SchedulerArg::None)]
    pub scheduler: SchedulerArg,

    /// How the points start: random samples or farthest-point sampling
    #[arg(long, value_enum, default_value_t = InitArg::Random)]
    pub init: InitArg,

    /// Start the points at these sample ids (a JSON list, in point order); overrides --init
    #[arg(long, value_name = "PATH", conflicts_with = "init")]
    pub init_indices: Option<PathBuf>,

    /// Evaluate each iteration on a fresh random batch of N samples [default: the whole pool]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,

    /// Drop this column of the feature files (where the label is kept)
    #[arg(long, value_enum, value_name = "WHICH")]
    pub label_column: Option<LabelColumn>,

    /// Seed for the initialisation and batches
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
    Random,
    Fds,
    Kmeans,
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

/// Parses the command line. On a usage error prints one line and returns
/// the exit code (2); `--help` and `--version` print and return 0.
pub fn parse() -> Result<Cli, i32> {
    Cli::try_parse().map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            return 0;
        }
        let color = std::io::stderr().is_terminal();
        let text = if color { e.render().ansi().to_string() } else { e.render().to_string() };
        eprintln!("activeft: {}", first_paragraph(&text));
        2
    })
}

/// Clap's messages span several lines (the problem, then usage hints);
/// keep the problem, on one line.
fn first_paragraph(text: &str) -> String {
    let text = text.trim_start().strip_prefix("error: ").unwrap_or(text);
    text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect::<Vec<_>>().join(" ")
}

pub use crate::run::run;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors_fold_to_one_line() {
        let text =
            "error: the following required arguments were not provided:\n  --budget <N|P%>\n\nUsage: activeft select\n";
        assert_eq!(first_paragraph(text), "the following required arguments were not provided: --budget <N|P%>");
    }
}
