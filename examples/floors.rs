//! What this machine allows, whatever the code: memory read bandwidth on a
//! buffer the size of the pool, the best float32 matrix-product rate, and
//! from them the floor of an ActiveFT run, so a reader can see how close a
//! measured time is to the hardware.
//!
//! cargo run --release --example floors -- N DIM BUDGET [ITERATIONS=300]
//!
//! floor = iterations × (feature bytes / bandwidth + 3·budget²·dim / GEMM rate)
//!         + the first full scan (2·n·budget·dim / GEMM rate) + loading (one read),
//! with the GEMM rate the better of matrixmultiply and the crate's own product.

use std::time::Instant;

use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use rayon::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let [n, dim, budget, rest @ ..] = &args[..] else {
        return Err("usage: floors N DIM BUDGET [ITERATIONS=300]".into());
    };
    let iterations = rest.first().copied().unwrap_or(300) as f64;
    let bytes = n * dim * 4;
    let bandwidth = read_bandwidth(bytes);
    let gemm = gemm_rate(*budget, *dim);
    let product = product_rate(256, *dim, *budget);
    // The floor takes the better kernel: what the hardware allows.
    let best = gemm.max(product);
    let pass = bytes as f64 / bandwidth;
    let point_term = 3.0 * (*budget as f64).powi(2) * *dim as f64 / best;
    let first_scan = 2.0 * *n as f64 * *budget as f64 * *dim as f64 / best;
    let floor = iterations * (pass + point_term) + first_scan + pass;
    println!("read bandwidth, both cores, {} MB buffer: {:.1} GB/s", bytes >> 20, bandwidth / 1e9);
    println!("float32 GEMM (matrixmultiply, tiles over both cores), {budget} x {dim}: {:.0} GFLOP/s", gemm / 1e9);
    let kernel = activeft::internals::kernel_name();
    println!(
        "float32 product (the crate's own kernel, {kernel}), 256 x {dim} by {dim} x {budget}, both cores: {:.0} GFLOP/s",
        product / 1e9
    );
    println!(
        "float32 product (the crate's own kernel, {kernel}), 512 x {dim} by {dim} x 64, both cores: {:.0} GFLOP/s",
        product_rate(512, *dim, 64) / 1e9
    );
    println!("per iteration: features {:.2} ms + point term {:.2} ms", pass * 1e3, point_term * 1e3);
    println!("first full scan {:.2} s; floor of the run: {floor:.2} s", first_scan);
    Ok(())
}

/// Bytes per second summing a buffer of `bytes` with all threads, best of five.
fn read_bandwidth(bytes: usize) -> f64 {
    let data: Vec<f32> = (0..bytes / 4).map(|i| (i % 7) as f32).collect();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        let sum: f32 = data
            .par_chunks(1 << 16)
            .map(|c| {
                let mut lanes = [0f32; 32];
                for chunk in c.chunks_exact(32) {
                    for (l, v) in lanes.iter_mut().zip(chunk) {
                        *l += v;
                    }
                }
                lanes.iter().sum::<f32>()
            })
            .sum();
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(sum);
    }
    bytes as f64 / best
}

/// Flops per second of `256 × dim` by `dim × k` products tiled over the
/// threads, as the engine's scans run them; best of three.
fn gemm_rate(k: usize, dim: usize) -> f64 {
    let tiles = 64;
    let a = Array2::from_shape_fn((256, dim), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.01);
    let b = Array2::from_shape_fn((dim, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.01);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        (0..tiles).into_par_iter().for_each(|_| {
            let mut c = Array2::<f32>::zeros((256, k));
            general_mat_mul(1.0, &a, &b, 0.0, &mut c);
            std::hint::black_box(&c);
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * 256.0 * dim as f64 * k as f64 * tiles as f64 / best
}

/// Flops per second of the crate's own product kernel, `rows × dim` tiles
/// of a pool against `cols` packed columns (the engine's scans: 256 rows
/// by the points; facility location: 512 rows by 64 candidates); best of
/// three.
fn product_rate(rows: usize, dim: usize, cols: usize) -> f64 {
    let tiles = 64;
    let a = Array2::from_shape_fn((rows, dim), |(i, j)| ((i * 31 + j * 17) % 13) as f32 * 0.01);
    let b = Array2::from_shape_fn((cols, dim), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.01);
    let packed = activeft::internals::Packed::new(b.view());
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        (0..tiles).into_par_iter().for_each_init(Vec::new, |c, _| {
            packed.product_padded(a.view(), c);
            std::hint::black_box(&c);
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    2.0 * (rows * dim * cols * tiles) as f64 / best
}
