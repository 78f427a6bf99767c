//! Compares the selection methods on the bundled digits, as in the README:
//! each method at budgets 20, 50 and 200, mean over seeds 0..5 of 1-NN accuracy,
//! linear-probe accuracy and mean coverage, with the wall time of selecting.
//! BiLAF takes half the budget as core samples (its default).
//!
//! cargo run --release --example compare [-- FEATURES.npy LABELS.npy]

use std::path::PathBuf;
use std::time::Instant;

use activeft::internals::{ActiveFtParams, Method, Round, evaluate, load_features, load_labels, run};

const BUDGETS: [usize; 3] = [20, 50, 200];
const SEEDS: u64 = 5;
/// ProbCover's δ comes from purity over this many k-means pseudo-classes
/// (the digits have ten classes; the paper uses the class count).
const PSEUDO_CLASSES: usize = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let features_path = PathBuf::from(args.first().map_or("examples/digits.npy", String::as_str));
    let labels_path = PathBuf::from(args.get(1).map_or("examples/digits_labels.npy", String::as_str));
    let mut features = load_features(std::slice::from_ref(&features_path), false)?.features;
    let labels = load_labels(&labels_path)?;
    let n = features.nrows();

    println!("| method | budget | 1-NN accuracy | linear-probe accuracy | mean coverage | time to select |");
    println!("|---|---|---|---|---|---|");
    for budget in BUDGETS {
        for name in ["activeft", "bilaf", "random", "fds", "kmeans", "facloc", "typiclust", "probcover"] {
            let (mut knn, mut linear, mut coverage, mut seconds) = (0.0, 0.0, 0.0, 0.0);
            for seed in 0..SEEDS {
                let method = match name {
                    "activeft" => Method::ActiveFt(ActiveFtParams { seed, ..ActiveFtParams::new(budget) }.check(n)?),
                    "bilaf" => Method::BiLaf(ActiveFtParams { seed, ..ActiveFtParams::new(budget / 2) }.check(n)?),
                    "random" => Method::Random,
                    "fds" => Method::Fds,
                    "kmeans" => Method::KMeans,
                    "facloc" => Method::FacLoc(None),
                    "typiclust" => Method::TypiClust(budget.min(500)),
                    _ => Method::ProbCover { delta: None, purity_classes: Some(PSEUDO_CLASSES) },
                };
                let start = Instant::now();
                let outcome = run(&method, &mut features, budget, seed, &Round::first(n), |_, _| {})?;
                seconds += start.elapsed().as_secs_f64();
                let m = evaluate(features.view(), &outcome.selected, Some(&labels));
                knn += m.knn1_accuracy.unwrap_or(f64::NAN);
                linear += m.linear_accuracy.unwrap_or(f64::NAN);
                coverage += m.coverage_mean;
            }
            let mean = |x: f64| x / SEEDS as f64;
            println!(
                "| {name} | {budget} | {:.3} | {:.3} | {:.4} | {:.1} ms |",
                mean(knn),
                mean(linear),
                mean(coverage),
                mean(seconds) * 1e3
            );
        }
    }
    Ok(())
}
