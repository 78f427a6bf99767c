//! The progress bar: on stderr, and only for a person watching a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps, starting in `phase`, hidden with `--quiet` or
/// when stderr is not a terminal, so pipes and logs stay clean. With no
/// steps to count (a method without iterations), a spinner with the time
/// so far. Both tick on their own, so a long phase between steps still
/// shows time passing.
pub fn bar(len: u64, phase: &'static str, quiet: bool) -> ProgressBar {
    if len == 0 {
        return spinner("selecting", quiet);
    }
    if !shown(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}  {elapsed} (eta {eta})")
        .expect("the template is valid")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(phase);
    bar.enable_steady_tick(TICK);
    bar
}

/// A spinner naming a phase (`loading`, `selecting`) with the time so
/// far; hidden like [`bar`].
pub fn spinner(phase: &'static str, quiet: bool) -> ProgressBar {
    if !shown(quiet) {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    spinner.set_style(ProgressStyle::with_template("{prefix} {spinner} {elapsed}").expect("the template is valid"));
    spinner.set_prefix(phase);
    spinner.enable_steady_tick(TICK);
    spinner
}

/// How often a bar redraws on its own.
const TICK: std::time::Duration = std::time::Duration::from_millis(120);

/// The run's last line for a person at a terminal (what was selected,
/// where it went, how long it took); nothing with `--quiet` or when stderr
/// is not a terminal, so scripts see an empty stderr on success.
pub fn summary(quiet: bool, line: &str) {
    if shown(quiet) {
        eprintln!("{line}");
    }
}

/// Whether progress is for a person: not `--quiet`, and stderr a terminal.
fn shown(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}
