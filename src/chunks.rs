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

/// Every unordered pair of `blocks` blocks (each block with itself too), in
/// rounds where no block appears twice, so a round's pairs run in parallel
/// without locks and each block meets its partners in a fixed order: the
/// circle method of round-robin tournaments, plus a first round of the
/// blocks with themselves.
pub fn rounds(blocks: usize) -> Vec<Vec<(usize, usize)>> {
    let mut all = vec![(0..blocks).map(|b| (b, b)).collect::<Vec<_>>()];
    // With an odd count, a phantom block sits out one real block per round.
    let seats = blocks + blocks % 2;
    for r in 0..seats.saturating_sub(1) {
        // Seat 0 stays; the others rotate.
        let at = |p: usize| if p == 0 { 0 } else { 1 + (p - 1 + r) % (seats - 1) };
        let round: Vec<(usize, usize)> = (0..seats / 2)
            .map(|p| (at(p), at(seats - 1 - p)))
            .filter(|&(x, y)| x < blocks && y < blocks)
            .map(|(x, y)| (x.min(y), x.max(y)))
            .collect();
        all.push(round);
    }
    all
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

    #[test]
    fn rounds_cover_every_pair_once_without_sharing_a_block() {
        for blocks in 1..12 {
            let mut seen = std::collections::BTreeSet::new();
            for round in rounds(blocks) {
                let mut used = vec![false; blocks];
                for (a, b) in round {
                    assert!(a <= b && !used[a] && !used[b], "{blocks}: block reused in a round");
                    used[a] = true;
                    used[b] = true;
                    assert!(seen.insert((a, b)), "{blocks}: ({a}, {b}) twice");
                }
            }
            assert_eq!(seen.len(), blocks * (blocks + 1) / 2);
        }
    }
}
