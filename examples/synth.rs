//! Writes a seeded Gaussian-mixture pool to .npy, for benchmarks and demos.
//!
//! cargo run --release --example synth -- OUT.npy N DIM [CLUSTERS] [SEED]
//!
//! Also writes each sample's cluster as int64 labels to OUT_labels.npy, for
//! `activeft eval --labels`.
//!
//! Each sample is a random cluster centre (unit Gaussian direction) plus
//! isotropic noise of scale 0.5/sqrt(DIM), so clusters overlap a little, as
//! embeddings of real classes do. Rows are written in chunks, so pools larger
//! than memory are fine.

use std::fs::File;
use std::io::{BufWriter, Write};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn gaussian(rng: &mut Xoshiro256PlusPlus) -> f32 {
    // Box-Muller; plenty for synthetic data.
    let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

fn main() -> std::io::Result<()> {
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

    let labels_path = args[0].strip_suffix(".npy").unwrap_or(&args[0]).to_string() + "_labels.npy";
    let mut out = BufWriter::with_capacity(1 << 22, File::create(&args[0])?);
    let mut labels = BufWriter::new(File::create(labels_path)?);
    write_header(&mut out, "<f4", &format!("({n}, {dim})"))?;
    write_header(&mut labels, "<i8", &format!("({n},)"))?;
    for _ in 0..n {
        let c = rng.random_range(0..clusters);
        labels.write_all(&(c as i64).to_le_bytes())?;
        for j in 0..dim {
            let v = centres[c * dim + j] + noise * gaussian(&mut rng);
            out.write_all(&v.to_le_bytes())?;
        }
    }
    labels.flush()?;
    out.flush()
}

/// An .npy v1 header: the dict padded with spaces to a multiple of 64 bytes.
fn write_header(out: &mut impl Write, descr: &str, shape: &str) -> std::io::Result<()> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())
}
