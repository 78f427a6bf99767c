//! The progress bar: on stderr, and only for a person watching a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps, starting in `phase`, hidden with `--quiet` or
/// when stderr is not a terminal, so pipes and logs stay clean; `eta`:
/// the steps take about equal time, so the time left can be estimated.
/// With no steps to count (a method without iterations), a spinner with
/// the time so far. Both tick on their own, so a long phase between steps
/// still shows time passing.
pub fn bar(len: u64, phase: &'static str, eta: bool, quiet: bool) -> ProgressBar {
    if len == 0 {
        return spinner("selecting", quiet);
    }
    if !shown(quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    // The bar takes what the terminal's width leaves, so a line never wraps.
    let template = if eta {
        "{prefix} [{wide_bar}] {pos}/{len} {msg}  {elapsed} (eta {eta})"
    } else {
        "{prefix} [{wide_bar}] {pos}/{len} {msg}  {elapsed}"
    };
    let style = ProgressStyle::with_template(template).expect("the template is valid").progress_chars("=> ");
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

/// `value` to seven significant digits: a loss near 1 keeps its decimals,
/// an objective summed over a million samples does not fill the line.
pub fn figure(value: f64) -> String {
    let digits = if value.is_finite() && value != 0.0 { value.abs().log10().floor() as i32 + 1 } else { 1 };
    format!("{value:.*}", (7 - digits).clamp(0, 6) as usize)
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

#[cfg(test)]
mod tests {
    use super::figure;

    #[test]
    fn figures_keep_seven_significant_digits() {
        assert_eq!(figure(2.3663451), "2.366345");
        assert_eq!(figure(0.0123456789), "0.012346");
        assert_eq!(figure(-1.5), "-1.500000");
        assert_eq!(figure(76015.273131), "76015.27");
        assert_eq!(figure(99999.996), "100000.00");
        assert_eq!(figure(2_562_334.5), "2562334");
        assert_eq!(figure(3.0e9), "3000000000");
        assert_eq!(figure(0.0), "0.000000");
        assert_eq!(figure(f64::NAN), "NaN");
    }
}
