//! Each sample's most similar candidates, listed in the full round, and
//! the same lists seen from the candidates' side.

use crate::error::{Result, filled};

/// The candidates each sample lists in the full round: enough that most
/// samples are resolved well before the budget is spent, few enough that
/// the lists stay a small share of the features' memory.
pub(super) const LISTED: usize = 64;

/// A sample's most similar candidates, seen from the candidates' side
/// (`listers(j)`: the samples listing `j`, with their float32 similarity).
/// A sample is *resolved* once its best similarity to the selection reaches
/// `beyond`, a bound on its similarity to every candidate off its list:
/// from then on only listed candidates can gain from it.
pub(super) struct Lists {
    /// Each sample's own list, in tiles of `tile` samples.
    forward: Vec<Nearest>,
    tile: usize,
    /// Per sample: the least similarity on its list plus the float32
    /// error, so no candidate off the list is more similar.
    beyond: Vec<f64>,
    /// `listers(j)` is `sample[start[j]..start[j + 1]]`.
    start: Vec<usize>,
    sample: Vec<u32>,
    similarity: Vec<f32>,
}

impl Lists {
    /// The lists of `n` samples, given as `runs` of `tile` samples each,
    /// also turned around: for each candidate, the samples listing it.
    /// `error` is how far above a listed similarity the true one may be.
    pub(super) fn turned(runs: Vec<Nearest>, n: usize, tile: usize, error: f64) -> Result<Self> {
        let mut start = vec![0usize; n + 1];
        for nearest in &runs {
            for &j in nearest.id.iter().filter(|&&j| j != u32::MAX) {
                start[j as usize + 1] += 1;
            }
        }
        for j in 0..n {
            start[j + 1] += start[j];
        }
        let what = "facloc's candidate lists";
        let mut sample = filled(start[n], 0u32, what)?;
        let mut similarity = filled(start[n], 0f32, what)?;
        let mut next = start.clone();
        let mut beyond = Vec::with_capacity(n);
        for (r, nearest) in runs.iter().enumerate() {
            for (row, (ids, sims)) in
                nearest.id.chunks(nearest.width).zip(nearest.similarity.chunks(nearest.width)).enumerate()
            {
                let i = r * tile + row;
                for (&j, &s) in ids.iter().zip(sims).filter(|&(&j, _)| j != u32::MAX) {
                    let at = &mut next[j as usize];
                    (sample[*at], similarity[*at]) = (i as u32, s);
                    *at += 1;
                }
                beyond.push(f64::from(nearest.least(row)) + error);
            }
        }
        // Samples within each candidate's listers are in id order: the runs are.
        Ok(Lists { forward: runs, tile, beyond, start, sample, similarity })
    }

    /// A bound on sample `i`'s similarity to every candidate off its list.
    pub(super) fn beyond(&self, i: usize) -> f64 {
        self.beyond[i]
    }

    /// The candidates sample `i` lists, with their float32 similarity.
    pub(super) fn listed(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let nearest = &self.forward[i / self.tile];
        let heap = (i % self.tile) * nearest.width..(i % self.tile + 1) * nearest.width;
        let listed = nearest.id[heap.clone()].iter().zip(&nearest.similarity[heap]);
        listed.filter(|&(&j, _)| j != u32::MAX).map(|(&j, &s)| (j as usize, s))
    }

    /// The samples listing candidate `j`, in id order, with their float32
    /// similarity.
    pub(super) fn listers(&self, j: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.start[j]..self.start[j + 1];
        self.sample[range.clone()].iter().map(|&i| i as usize).zip(self.similarity[range].iter().copied())
    }
}

/// The `width` most similar candidates offered so far to each of a run of
/// samples, as a min-heap per sample: every candidate left out is at most
/// as similar as the heap's least.
pub(super) struct Nearest {
    width: usize,
    similarity: Vec<f32>,
    id: Vec<u32>,
}

impl Nearest {
    pub(super) fn new(rows: usize, width: usize) -> Result<Self> {
        let what = "facloc's candidate lists";
        Ok(Nearest {
            width,
            similarity: filled(rows * width, f32::NEG_INFINITY, what)?,
            id: filled(rows * width, u32::MAX, what)?,
        })
    }

    /// Offers the candidates `ids` at similarities `scores` to sample `r`.
    pub(super) fn offer(&mut self, r: usize, scores: &[f32], ids: &[usize]) {
        let heap = r * self.width..(r + 1) * self.width;
        // SAFETY: the body was chosen for this CPU.
        unsafe { (*OFFER)(&mut self.similarity[heap.clone()], &mut self.id[heap], scores, ids) }
    }

    /// The least similarity listed for sample `r` (−∞ when the list has room).
    pub(super) fn least(&self, r: usize) -> f32 {
        self.similarity[r * self.width]
    }
}

/// Scores [`Nearest::offer`] looks over at once for one worth taking.
const OFFERED: usize = 32;

/// The portable body of [`Nearest::offer`] on one sample's heap.
fn offer_plain(similarity: &mut [f32], id: &mut [u32], scores: &[f32], ids: &[usize]) {
    offer_with(similarity, id, scores, ids, mask_above);
}

/// Bit `k` set where `scores[k] > least` (at most [`OFFERED`] scores).
fn mask_above(scores: &[f32], least: f32) -> u32 {
    scores.iter().enumerate().fold(0u32, |mask, (k, &s)| mask | (u32::from(s > least) << k))
}

/// [`Nearest::offer`] on one sample's heap, with `mask` as [`mask_above`].
#[inline(always)]
fn offer_with(
    similarity: &mut [f32],
    id: &mut [u32],
    scores: &[f32],
    ids: &[usize],
    mask: impl Fn(&[f32], f32) -> u32,
) {
    // Most stretches have nothing to take once the lists fill: one pass
    // over each finds out.
    for (scores, ids) in scores.chunks(OFFERED).zip(ids.chunks(OFFERED)) {
        // The least only rises, so a score not above it now never will be
        // in this stretch.
        let mut above = mask(scores, similarity[0]);
        while above != 0 {
            let k = above.trailing_zeros() as usize;
            above &= above - 1;
            if scores[k] > similarity[0] {
                replace_least(similarity, id, scores[k], ids[k] as u32);
            }
        }
    }
}

type OfferBody = unsafe fn(&mut [f32], &mut [u32], &[f32], &[usize]);

/// Every body of [`Nearest::offer`] this CPU runs, the portable one first
/// and the fastest last.
fn runnable() -> Vec<OfferBody> {
    let mut all: Vec<OfferBody> = vec![offer_plain];
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
        all.push(simd::offer_avx512);
    }
    all
}

static OFFER: std::sync::LazyLock<OfferBody> =
    std::sync::LazyLock::new(|| runnable().pop().expect("the portable body runs anywhere"));

/// [`offer_plain`] compiled for AVX-512: the same lists.
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// [`super::offer_plain`] with the masks of whole stretches from two
    /// 16-lane comparisons (ordered, like `>`: the same bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn offer_avx512(similarity: &mut [f32], id: &mut [u32], scores: &[f32], ids: &[usize]) {
        super::offer_with(similarity, id, scores, ids, |scores, least| {
            if scores.len() < super::OFFERED {
                return super::mask_above(scores, least);
            }
            let least = _mm512_set1_ps(least);
            // SAFETY: the stretch holds 32 scores; the CPU was checked.
            unsafe {
                let low = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(scores.as_ptr()), least);
                let high = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(scores.as_ptr().add(16)), least);
                u32::from(low) | (u32::from(high) << 16)
            }
        })
    }
}

/// Puts `(s, j)` in place of the heap's least and sifts it down.
fn replace_least(similarity: &mut [f32], id: &mut [u32], s: f32, j: u32) {
    let mut at = 0;
    loop {
        let mut low = at;
        let mut value = s;
        for child in [2 * at + 1, 2 * at + 2] {
            if child < similarity.len() && similarity[child] < value {
                (low, value) = (child, similarity[child]);
            }
        }
        if low == at {
            break;
        }
        similarity[at] = similarity[low];
        id[at] = id[low];
        at = low;
    }
    similarity[at] = s;
    id[at] = j;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lists_keep_the_most_similar_and_nothing_left_out_is_above_the_least(
            scores in proptest::collection::vec(-4i8..4, 1..200), width in 1usize..9, batch in 1usize..40,
        ) {
            // Few distinct values: many ties.
            let scores: Vec<f32> = scores.iter().map(|&s| f32::from(s) / 4.0).collect();
            let ids: Vec<usize> = (0..scores.len()).collect();
            let mut nearest = Nearest::new(1, width).unwrap();
            for (scores, ids) in scores.chunks(batch).zip(ids.chunks(batch)) {
                nearest.offer(0, scores, ids);
            }
            // Every body this CPU runs keeps the portable one's list, ties and all.
            for body in runnable() {
                let mut other = Nearest::new(1, width).unwrap();
                for (scores, ids) in scores.chunks(batch).zip(ids.chunks(batch)) {
                    // SAFETY: the body runs on this CPU.
                    unsafe { body(&mut other.similarity, &mut other.id, scores, ids) };
                }
                prop_assert_eq!(&nearest.id, &other.id);
                prop_assert_eq!(&nearest.similarity, &other.similarity);
            }
            let mut listed: Vec<(f32, u32)> =
                nearest.similarity.iter().copied().zip(nearest.id.iter().copied()).filter(|&(_, j)| j != u32::MAX).collect();
            prop_assert_eq!(listed.len(), width.min(scores.len()));
            for &(s, j) in &listed {
                prop_assert_eq!(s, scores[j as usize]);
            }
            let mut sorted = scores.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            listed.sort_by(|a, b| b.0.total_cmp(&a.0));
            let listed_scores: Vec<f32> = listed.iter().map(|&(s, _)| s).collect();
            prop_assert_eq!(&listed_scores[..], &sorted[..listed.len()]);
            let least = nearest.least(0);
            let off: Vec<usize> = ids.iter().copied().filter(|j| !listed.iter().any(|&(_, l)| l as usize == *j)).collect();
            prop_assert!(off.iter().all(|&j| scores[j] <= least));
        }
    }
}
