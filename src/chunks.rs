//! How work is split over threads, and why no result depends on how many
//! there are.
//!
//! The rule: every parallel pass splits the samples into chunks of a fixed
//! size, computes each chunk's part on its own, and combines the parts in
//! chunk order. Rayon decides only which thread runs which chunk, never where
//! a chunk starts or in which order partial results meet, so a sum has the
//! same bits with one thread or with sixty-four.
//!
//! The sizes are therefore part of the output: changing [`SUM`] or [`SCAN`]
//! changes the last bits of losses and k-means++ draws, and with them, on
//! near-ties, a selection. They differ by pass because they were each
//! measured best for their work per sample.

/// Samples per partial sum of a per-sample quantity (losses, distances), and
/// per parallel task of the cheap per-sample checks.
pub const SUM: usize = 256;
/// Samples per tile of a float32 product against the points (full scans).
pub const SCAN: usize = 256;
/// Samples scanned and recorded at a time, so the results of a full scan of
/// the whole pool never pile up at once (memory only, not part of the output).
pub const RESCAN: usize = 16_384;
/// Samples per task in passes that do one dot product per sample and step
/// (farthest-point sampling, k-means++ seeding).
pub const SWEEP: usize = 4096;
/// Samples per tile of the dense mapping's products.
pub const MAP: usize = 2048;
/// Points per task, at least, in per-point passes (the points' movement, the
/// gradient's last step): below that, waking a second thread costs more
/// than the work (speed only, not part of the output).
pub const FEW_ROWS: usize = 64;

/// The sum of `terms`, in [`SUM`]-sized chunks combined in order.
pub fn sum(terms: &[f64]) -> f64 {
    use rayon::prelude::*;
    let partial: Vec<f64> = terms.par_chunks(SUM).map(|c| c.iter().sum::<f64>()).collect();
    partial.iter().sum::<f64>()
}

/// The mean of `terms`, summed as in [`sum`].
pub fn mean(terms: &[f64]) -> f64 {
    sum(terms) / terms.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_do_not_depend_on_the_thread_count() {
        // Terms whose sum depends on the order they are added in.
        let terms: Vec<f64> =
            (0..100_000).map(|i| 1.0 / (1.0 + i as f64) * if i % 3 == 0 { 1e8 } else { 1.0 }).collect();
        let with = |threads: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| sum(&terms).to_bits())
        };
        assert_eq!(with(1), with(2));
        assert_eq!(with(1), with(5));
        let serial: f64 = terms.chunks(SUM).map(|c| c.iter().sum::<f64>()).sum();
        assert_eq!(with(3), serial.to_bits());
    }
}
