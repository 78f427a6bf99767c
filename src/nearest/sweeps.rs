//! The two passes a full scan makes over one sample's row of filter bounds
//! (one bound per point): the stripes' maxima, which give the best bound
//! and a bound the best few reach, then the gathering of every bound at or
//! above a floor. At a budget of 12,811 each pass reads 50 KB per scan, so
//! both have bodies compiled for the CPU found, chosen once; they compute
//! the same values as the portable ones (maxima and comparisons of floats
//! round nothing).

/// Interleaved stripes whose maxima give a score that a row's best few reach.
const STRIPES: usize = 64;
/// Bounds compared at a time by [`gather`]: a bit mask per block.
const BLOCK: usize = 16;

/// The largest of `scores`, and a score at least `keep` of them reach
/// (minus infinity when there are fewer): the stripes' bound on long rows,
/// the exact `keep`-th largest on short ones. Both are found among integer
/// keys ([`descending`]), which select faster than floats compared in total
/// order.
pub fn top_and_kth(scores: &[f32], keep: usize) -> (f32, f32) {
    if scores.len() < keep {
        return (scores.iter().fold(f32::NEG_INFINITY, |m, &s| larger(m, s)), f32::NEG_INFINITY);
    }
    let mut short = [0u32; 2 * STRIPES];
    let mut long = Vec::new();
    let keys: &mut [u32] = if keep <= STRIPES && scores.len() >= 2 * STRIPES {
        for (key, m) in short.iter_mut().zip(stripe_maxima(scores)) {
            *key = descending(m);
        }
        &mut short[..STRIPES]
    } else if scores.len() <= short.len() {
        for (key, &s) in short.iter_mut().zip(scores) {
            *key = descending(s);
        }
        &mut short[..scores.len()]
    } else {
        long.extend(scores.iter().map(|&s| descending(s)));
        &mut long
    };
    let top = keys.iter().copied().min().expect("at least `keep` keys");
    let kth = *keys.select_nth_unstable(keep - 1).1;
    (ascending_value(top), ascending_value(kth))
}

/// A score and a tie-breaker as one integer: larger scores sort first,
/// then smaller tie-breakers (sorting these is cheaper than comparing pairs).
pub(super) fn score_key(score: f32, tie: u32) -> u64 {
    (u64::from(descending(score)) << 32) | u64::from(tie)
}

/// An integer that orders floats as `total_cmp` does, larger first.
pub(super) fn descending(x: f32) -> u32 {
    let bits = x.to_bits();
    !(if bits >> 31 == 1 { !bits } else { bits | 1 << 31 })
}

/// The float a [`descending`] key was made from.
pub(super) fn ascending_value(key: u32) -> f32 {
    let ascending = !key;
    f32::from_bits(if ascending >> 31 == 1 { ascending & !(1 << 31) } else { !ascending })
}

/// Appends `(score, index)` to `list` for every score at or above `floor`,
/// in index order.
pub fn gather(scores: &[f32], floor: f32, list: &mut Vec<(f32, u32)>) {
    // SAFETY: `BODIES` holds bodies whose CPU features were detected.
    unsafe { (BODIES.gather)(scores, floor, list) }
}

/// The maximum of each of [`STRIPES`] interleaved stripes of `scores`.
fn stripe_maxima(scores: &[f32]) -> [f32; STRIPES] {
    // SAFETY: as in `gather`.
    unsafe { (BODIES.stripe_maxima)(scores) }
}

#[inline(always)]
fn larger(m: f32, s: f32) -> f32 {
    if s > m { s } else { m }
}

/// The portable body of [`stripe_maxima`].
///
/// # Safety
/// None: safe code, marked unsafe only to share the bodies' type.
#[inline(always)]
unsafe fn stripe_maxima_plain(scores: &[f32]) -> [f32; STRIPES] {
    let mut maxima = [f32::NEG_INFINITY; STRIPES];
    let rows = scores.chunks_exact(STRIPES);
    for (m, &s) in maxima.iter_mut().zip(rows.remainder()) {
        *m = s;
    }
    for row in rows {
        let row: &[f32; STRIPES] = row.try_into().expect("a full row");
        for (m, &s) in maxima.iter_mut().zip(row) {
            *m = larger(*m, s);
        }
    }
    maxima
}

/// The portable body of [`gather`]: a mask of the bounds at or above the
/// floor per block, then one entry per set bit (most blocks have none).
///
/// # Safety
/// None: safe code, marked unsafe only to share the bodies' type.
#[inline(always)]
unsafe fn gather_plain(scores: &[f32], floor: f32, list: &mut Vec<(f32, u32)>) {
    let blocks = scores.chunks_exact(BLOCK);
    let tail = scores.len() - blocks.remainder().len();
    for (b, block) in blocks.enumerate() {
        let block: &[f32; BLOCK] = block.try_into().expect("a full block");
        let mut mask = block.iter().enumerate().fold(0u32, |m, (j, &s)| m | (u32::from(s >= floor) << j));
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            list.push((block[j], (b * BLOCK + j) as u32));
            mask &= mask - 1;
        }
    }
    for (j, &s) in scores.iter().enumerate().skip(tail) {
        if s >= floor {
            list.push((s, j as u32));
        }
    }
}

type StripeMaxima = unsafe fn(&[f32]) -> [f32; STRIPES];
type Gather = unsafe fn(&[f32], f32, &mut Vec<(f32, u32)>);

struct Bodies {
    stripe_maxima: StripeMaxima,
    gather: Gather,
}

static BODIES: std::sync::LazyLock<Bodies> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return Bodies { stripe_maxima: simd::stripe_maxima_avx2, gather: simd::gather_avx2 };
    }
    Bodies { stripe_maxima: stripe_maxima_plain, gather: gather_plain }
});

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::STRIPES;

    /// [`super::stripe_maxima_plain`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn stripe_maxima_avx2(scores: &[f32]) -> [f32; STRIPES] {
        // SAFETY: the caller's promise, passed on.
        unsafe { super::stripe_maxima_plain(scores) }
    }

    /// [`super::gather_plain`] compiled for AVX2 (a compare and a move of
    /// the sign bits per eight bounds).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn gather_avx2(scores: &[f32], floor: f32, list: &mut Vec<(f32, u32)>) {
        // SAFETY: the caller's promise, passed on.
        unsafe { super::gather_plain(scores, floor, list) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    /// Rows of small integers (many ties), some at minus infinity.
    fn rows() -> Vec<Vec<f32>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        [1, 7, 15, 16, 17, 127, 128, 129, 500, 1300]
            .iter()
            .map(|&len| {
                (0..len)
                    .map(|_| match rand::RngExt::random_range(&mut rng, 0..60) {
                        v if v >= 50 => f32::NEG_INFINITY,
                        v => v as f32,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn top_and_kth_bound_the_kth_largest_from_below() {
        for row in rows() {
            let mut sorted = row.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            for keep in [1, 17, 33] {
                let (top, kth) = top_and_kth(&row, keep);
                assert_eq!(top, sorted[0]);
                match sorted.get(keep - 1) {
                    None => assert_eq!(kth, f32::NEG_INFINITY),
                    Some(&exact) => assert!(kth <= exact && row.iter().filter(|&&s| s >= kth).count() >= keep),
                }
            }
        }
    }

    #[test]
    fn the_chosen_bodies_equal_the_literal_passes() {
        for row in rows() {
            if row.len() >= STRIPES {
                let literal: Vec<f32> = (0..STRIPES)
                    .map(|s| row.iter().skip(s).step_by(STRIPES).fold(f32::NEG_INFINITY, |m, &v| m.max(v)))
                    .collect();
                assert_eq!(stripe_maxima(&row).to_vec(), literal);
                // SAFETY: the portable body needs nothing.
                assert_eq!(unsafe { stripe_maxima_plain(&row) }.to_vec(), literal);
            }
            for floor in [f32::NEG_INFINITY, 0.0, 20.0, 49.0, 50.0] {
                let literal: Vec<(f32, u32)> =
                    row.iter().enumerate().filter(|&(_, &s)| s >= floor).map(|(j, &s)| (s, j as u32)).collect();
                let mut list = vec![(7.0, 7)];
                gather(&row, floor, &mut list);
                assert_eq!(list[1..], literal[..], "floor {floor}");
                list.clear();
                // SAFETY: the portable body needs nothing.
                unsafe { gather_plain(&row, floor, &mut list) };
                assert_eq!(list, literal, "floor {floor}");
            }
        }
    }
}
