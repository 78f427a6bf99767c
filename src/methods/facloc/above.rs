//! The estimates' sums: over samples, each candidate's part of its gain.

/// Parts of float32 estimates, one per candidate: `Σ max(0, s − c)` over
/// samples, and how many had `s` above `c − error` (where the exact
/// similarity may differ). Kept as two arrays so a row of scores is taken
/// in a few vector instructions.
pub(super) struct Above {
    sum: Vec<f64>,
    count: Vec<u64>,
}

impl Above {
    pub(super) fn new(len: usize) -> Self {
        Above { sum: vec![0.0; len], count: vec![0; len] }
    }

    /// The parts over samples given as (coverage, scores against the
    /// candidates); there is at least one.
    pub(super) fn of<'s>(mut samples: impl Iterator<Item = (f64, &'s [f32])>, error: f64) -> Self {
        let (c, scores) = samples.next().expect("a sample");
        let mut parts = Above::new(scores.len());
        for (c, scores) in std::iter::once((c, scores)).chain(samples) {
            // SAFETY: the body was chosen for this CPU.
            unsafe { (*ADD_PARTS)(&mut parts.sum, &mut parts.count, scores, c, error) };
        }
        parts
    }

    pub(super) fn offer(&mut self, b: usize, above: f64, error: f64) {
        let (part, near) = Above::part(above, error);
        self.sum[b] += part;
        self.count[b] += near;
    }

    /// One sample's part, given by how far its float32 score is `above`
    /// its coverage: what it adds to the sum, and 1 if the exact similarity
    /// may be above the coverage (the score is within `error` below it, or
    /// higher), so the bound must allow for that error.
    #[inline(always)]
    fn part(above: f64, error: f64) -> (f64, u64) {
        (above.max(0.0), u64::from(above > -error))
    }

    pub(super) fn add(&mut self, other: &Above) {
        self.add_at(0, other);
    }

    /// Adds `other`'s parts to entries `offset..` of these.
    pub(super) fn add_at(&mut self, offset: usize, other: &Above) {
        self.sum[offset..].iter_mut().zip(&other.sum).for_each(|(a, b)| *a += b);
        self.count[offset..].iter_mut().zip(&other.count).for_each(|(a, b)| *a += b);
    }

    /// Upper bounds on the exact sums: `max(0, x − c)` moves by at most as
    /// much as `x` does.
    pub(super) fn bounds(&self, error: f64) -> Vec<f64> {
        (0..self.sum.len()).map(|b| self.bound(b, error)).collect()
    }

    /// The bound of entry `b`.
    pub(super) fn bound(&self, b: usize, error: f64) -> f64 {
        self.sum[b] + self.count[b] as f64 * error * 1.001
    }
}

/// The portable body of the sums in [`Above::of`]: each score's part
/// added to its column's sum and count.
#[inline(always)]
fn add_parts_plain(sum: &mut [f64], count: &mut [u64], scores: &[f32], c: f64, error: f64) {
    for ((sum, count), &s) in sum.iter_mut().zip(count).zip(scores) {
        let (part, near) = Above::part(f64::from(s) - c, error);
        *sum += part;
        *count += near;
    }
}

type AddPartsBody = unsafe fn(&mut [f64], &mut [u64], &[f32], f64, f64);

/// Every body of the sums this CPU runs, the portable one first and the
/// fastest last.
fn runnable() -> Vec<AddPartsBody> {
    let mut all: Vec<AddPartsBody> = vec![add_parts_plain];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        all.push(simd::add_parts_avx512);
    }
    all
}

static ADD_PARTS: std::sync::LazyLock<AddPartsBody> =
    std::sync::LazyLock::new(|| runnable().pop().expect("the portable body runs anywhere"));

/// [`add_parts_plain`] compiled for AVX-512: the same operations in the
/// same order, so the same bits.
#[cfg(target_arch = "x86_64")]
mod simd {
    /// [`super::add_parts_plain`] for AVX-512.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn add_parts_avx512(sum: &mut [f64], count: &mut [u64], scores: &[f32], c: f64, error: f64) {
        super::add_parts_plain(sum, count, scores, c, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_body_sums_as_the_literal_loop_does(
            scores in proptest::collection::vec(-8i8..8, 1..100), c in -9i8..9, seed in 0u64..1000,
        ) {
            // Scores on a grid around the coverage: parts of zero, ties with
            // the coverage, and scores within the error below it.
            let error = 1.0 / 64.0;
            let scores: Vec<f32> = scores.iter().map(|&s| f32::from(s) / 8.0).collect();
            let c = f64::from(c) / 8.0 + error / 2.0 * (seed % 3) as f64;
            let start = |len: usize| (0..len).map(|b| (b as f64).sqrt() * 0.1).collect::<Vec<f64>>();
            let (sum, count) = (start(scores.len()), vec![3u64; scores.len()]);
            let mut written = (sum.clone(), count.clone());
            for (b, &s) in scores.iter().enumerate() {
                let above = f64::from(s) - c;
                written.0[b] += above.max(0.0);
                written.1[b] += u64::from(above > -error);
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for body in runnable() {
                let (mut sum, mut count) = (sum.clone(), count.clone());
                // SAFETY: the body runs on this CPU.
                unsafe { body(&mut sum, &mut count, &scores, c, error) };
                prop_assert_eq!(bits(&sum), bits(&written.0));
                prop_assert_eq!(&count, &written.1);
            }
        }
    }
}
