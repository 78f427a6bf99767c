//! Writes a seeded Gaussian-mixture pool to .npy, for benchmarks and demos.
//!
//! cargo run --release --example synth -- OUT.npy N DIM [CLUSTERS=100] [SEED=0] [SPREAD=1.2]
//!
//! Also writes each sample's cluster as int64 labels to OUT_labels.npy, for
//! `activeft eval --labels`, and prints the pool's mean cosine to its class
//! mean on stderr. The default spread makes pools as spread out as real
//! embeddings (cosine about 0.64); SPREAD=0.5 gives the easy pools (0.9)
//! measured before. The pool is built in memory and written with ndarray-npy.

use activeft::internals::synth;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: synth OUT.npy N DIM [CLUSTERS=100] [SEED=0] [SPREAD={}]", synth::REAL_SPREAD);
        std::process::exit(2);
    }
    let arg = |i: usize, default: usize| args.get(i).map_or(Ok(default), |s| s.parse());
    let (n, dim, clusters, seed) = (arg(1, 0)?, arg(2, 0)?, arg(3, 100)?, arg(4, 0)? as u64);
    let spread = args.get(5).map_or(Ok(synth::REAL_SPREAD), |s| s.parse())?;
    let (pool, labels) = synth::mixture(n, dim, clusters, spread, seed);
    let labels_path = args[0].strip_suffix(".npy").unwrap_or(&args[0]).to_string() + "_labels.npy";
    ndarray_npy::write_npy(&args[0], &pool)?;
    ndarray_npy::write_npy(labels_path, &labels)?;
    if n <= 200_000 {
        eprintln!("mean cosine to the class mean: {:.3}", synth::cosine_to_class_mean(&pool, &labels));
    }
    Ok(())
}
