//! Writes a seeded Gaussian-mixture pool to .npy, for benchmarks and demos.
//!
//! cargo run --release --example synth -- OUT.npy N DIM [CLUSTERS] [SEED]
//!
//! Also writes each sample's cluster as int64 labels to OUT_labels.npy, for
//! `activeft eval --labels`.
//!
//! Each sample is a random cluster centre (unit Gaussian direction) plus
//! isotropic noise of scale 0.5/sqrt(DIM), so clusters overlap a little.
//! The pool is built in memory (4 · N · DIM bytes) and written with
//! ndarray-npy.

use ndarray::{Array1, Array2};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f32 {
    // Box-Muller; plenty for synthetic data.
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: synth OUT.npy N DIM [CLUSTERS=100] [SEED=0]");
        std::process::exit(2);
    }
    let arg = |i: usize, default: usize| args.get(i).map_or(default, |s| s.parse().expect("a whole number"));
    let (n, dim, clusters, seed) = (arg(1, 0), arg(2, 0), arg(3, 100), arg(4, 0) as u64);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| gaussian(&mut rng) / (dim as f32).sqrt()).collect();
    let noise = 0.5 / (dim as f32).sqrt();

    let mut pool = Array2::<f32>::zeros((n, dim));
    let mut labels = Array1::<i64>::zeros(n);
    for (mut row, label) in pool.rows_mut().into_iter().zip(labels.iter_mut()) {
        let c = rng.random_range(0..clusters);
        *label = c as i64;
        for (j, v) in row.iter_mut().enumerate() {
            *v = centres[c * dim + j] + noise * gaussian(&mut rng);
        }
    }
    let labels_path = args[0].strip_suffix(".npy").unwrap_or(&args[0]).to_string() + "_labels.npy";
    ndarray_npy::write_npy(&args[0], &pool)?;
    ndarray_npy::write_npy(labels_path, &labels)?;
    Ok(())
}
