//! The regression check CI runs: fixed seeded pools (spread out like real
//! embeddings, and one easy pool), each method's selection and its `work`
//! counters, against the baseline committed in `benches/regression.json`.
//! A different selection, or more than 5% more work on any counter, fails
//! with a line naming the run and the counter. No timing: the counters are
//! deterministic.
//!
//! cargo run --release --example regression            # check
//! cargo run --release --example regression -- --update   # rewrite the baseline
//!
//! The counters follow from `dot` and the crate's float32 product, which
//! give the same bits on every CPU (ActiveFT's point term runs on that
//! product too), so they are compared on any machine. The pools have under
//! 1,024 points, where no run takes the 8-bit filter of VNNI CPUs. The
//! `_coded` runs take the 12-bit codes (full scans against 128 to 1,023
//! points, facloc's estimates from 4,096 samples) on every CPU: their
//! portable bodies give the fast ones' bits, so these counters too are the
//! same on any machine.

use std::collections::BTreeMap;

use activeft::internals::{ActiveFtParams, Method, Round, load_features, run, synth, take_codes12_everywhere};
use serde_json::{Value, json};

const BASELINE: &str = "benches/regression.json";
/// More work than this share above the baseline fails.
const TOLERANCE: f64 = 0.05;

/// One run: a name, the pool (n, dim, classes, spread), the method and
/// budget, and whether it takes the 12-bit codes on every CPU.
struct Case {
    name: &'static str,
    pool: (usize, usize, usize, f64),
    method: fn(usize, usize) -> Method,
    budget: usize,
    coded: bool,
}

fn activeft(budget: usize, n: usize) -> Method {
    let params = ActiveFtParams { iterations: 100, ..ActiveFtParams::new(budget) };
    Method::ActiveFt(params.check(n).expect("valid settings"))
}

fn activeft_batches(budget: usize, n: usize) -> Method {
    let params = ActiveFtParams { iterations: 100, batch_size: Some(n / 3), ..ActiveFtParams::new(budget) };
    Method::ActiveFt(params.check(n).expect("valid settings"))
}

const CASES: [Case; 8] = [
    Case { name: "activeft_spread", pool: SPREAD, method: activeft, budget: 80, coded: false },
    Case {
        name: "activeft_easy",
        pool: (8000, 64, 40, synth::EASY_SPREAD),
        method: activeft,
        budget: 80,
        coded: false,
    },
    Case { name: "activeft_spread_batches", pool: SPREAD, method: activeft_batches, budget: 80, coded: false },
    Case { name: "kmeans_spread", pool: SPREAD, method: |_, _| Method::KMeans, budget: 80, coded: false },
    Case { name: "fds_spread", pool: SPREAD, method: |_, _| Method::Fds, budget: 80, coded: false },
    Case { name: "facloc_spread", pool: (3000, 64, 20, synth::REAL_SPREAD), method: facloc, budget: 60, coded: false },
    Case { name: "activeft_spread_coded", pool: SPREAD, method: activeft, budget: 200, coded: true },
    Case {
        name: "facloc_spread_coded",
        pool: (5000, 64, 20, synth::REAL_SPREAD),
        method: facloc,
        budget: 60,
        coded: true,
    },
];

/// The spread pool most runs share.
const SPREAD: (usize, usize, usize, f64) = (8000, 64, 40, synth::REAL_SPREAD);

fn facloc(_: usize, _: usize) -> Method {
    Method::FacLoc(None)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let update = std::env::args().any(|a| a == "--update");
    let dir = tempfile_dir()?;
    let mut measured = BTreeMap::new();
    for case in &CASES {
        let (n, dim, classes, spread) = case.pool;
        let (pool, _) = synth::mixture(n, dim, classes, spread, 7);
        let path = dir.join(format!("{}.npy", case.name));
        ndarray_npy::write_npy(&path, &pool)?;
        let mut features = load_features(&[path], false)?.features;
        take_codes12_everywhere(case.coded);
        let outcome = run(&(case.method)(case.budget, n), &mut features, case.budget, 0, &Round::first(n), |_, _| {})?;
        let selected = serde_json::to_vec(&outcome.selected)?;
        measured.insert(
            case.name.to_string(),
            json!({
                "selected_blake3": blake3::hash(&selected).to_hex().as_str(),
                "full_scans": outcome.work.full_scans,
                "rescored": outcome.work.rescored,
            }),
        );
    }
    std::fs::remove_dir_all(&dir)?;
    if update {
        std::fs::write(BASELINE, serde_json::to_string_pretty(&measured)? + "\n")?;
        println!("wrote {BASELINE}");
        return Ok(());
    }
    let baseline: BTreeMap<String, Value> = serde_json::from_str(&std::fs::read_to_string(BASELINE)?)?;
    let mut failures = Vec::new();
    for (name, now) in &measured {
        let Some(then) = baseline.get(name) else {
            failures.push(format!("{name}: not in {BASELINE} (run with --update)"));
            continue;
        };
        if now["selected_blake3"] != then["selected_blake3"] {
            failures.push(format!("{name}: the selection changed"));
        }
        for counter in ["full_scans", "rescored"] {
            let (now, then) = (now[counter].as_u64().unwrap_or(0), then[counter].as_u64().unwrap_or(0));
            let change = (now as f64 - then as f64) / (then as f64).max(1.0);
            println!("{name:<26} {counter:<10} {now:>12} (baseline {then}, {:+.1}%)", 100.0 * change);
            if change > TOLERANCE {
                failures.push(format!("{name}: {counter} {now} is {:.1}% above the baseline {then}", 100.0 * change));
            }
        }
    }
    if failures.is_empty() {
        println!("regression: {} runs as the baseline", measured.len());
        Ok(())
    } else {
        for f in &failures {
            eprintln!("regression: {f}");
        }
        std::process::exit(1);
    }
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("activeft-regression-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
