//! Runs ActiveFT with both engines on one pool and compares them: the pruned
//! engine that `activeft select` uses against the dense oracle, which
//! computes every sample-point similarity in every iteration. The tests do
//! the same on small random pools; this is the check at full size.
//!
//! `cargo run --release --example engines -- POOL.npy BUDGET [ITERATIONS]`
//! (the dense engine needs about a minute at 50,000 x 384 with budget 500).

use std::path::PathBuf;

use activeft::internals::activeft::select;
use activeft::internals::{ActiveFtParams, Mode, Round, load_features};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, budget, rest @ ..] = &args[..] else {
        return Err("usage: engines POOL.npy BUDGET [ITERATIONS]".into());
    };
    let features = load_features(&[PathBuf::from(path)], false)?.features;
    let mut params = ActiveFtParams::new(budget.parse()?);
    if let Some(iterations) = rest.first() {
        params.iterations = iterations.parse()?;
    }
    let params = params.check(features.nrows())?;
    let run = |mode: Mode| -> Result<_, Box<dyn std::error::Error>> {
        let mut pool = features.clone();
        let round = Round::first(pool.nrows());
        let outcome = select(&mut pool, &params, &round, mode, |_, _| {})?;
        println!("{mode:?}: {:.1} s optimising, {:.1} s mapping", outcome.optimize_seconds, outcome.map_seconds);
        Ok(outcome)
    };
    let (pruned, dense) = (run(Mode::Pruned)?, run(Mode::Dense)?);
    let worst = pruned.losses.iter().zip(&dense.losses).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("same selection: {}", pruned.selected == dense.selected);
    println!("largest loss difference over {} iterations: {worst:.2e}", pruned.losses.len());
    if pruned.selected != dense.selected {
        return Err("the engines disagree".into());
    }
    Ok(())
}
