//! The progress bar: on stderr, and only for a person watching a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps, hidden with `--quiet` or when stderr is not a
/// terminal, so pipes and logs stay clean. With no steps to count (a
/// method without iterations), a spinner with the time so far.
pub fn bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    if len == 0 {
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        spinner.set_style(ProgressStyle::with_template("{prefix} {spinner} {elapsed}").expect("the template is valid"));
        spinner.set_prefix("selecting");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        return spinner;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} loss {msg}  eta {eta}")
        .expect("the template is valid")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix("optimizing");
    bar
}

/// The run's last line for a person at a terminal (what was selected,
/// where it went, how long it took); nothing with `--quiet` or when stderr
/// is not a terminal, so scripts see an empty stderr on success.
pub fn summary(quiet: bool, line: &str) {
    if !quiet && std::io::stderr().is_terminal() {
        eprintln!("{line}");
    }
}
