//! Every sample's class (its nearest centre) and its rival (the nearest
//! other centre), in float64 Euclidean distance; ties go to the lower class.
//!
//! A float32 product screens the centres: on near-unit rows `|x − c|²` is
//! `|x|² − 2(x·c − |c|²/2)`, so only centres whose screened score is within
//! the product's error of the second best can be nearest or rival, and only
//! those get the exact float64 distance. A centre is always in its own class,
//! even when another centre sits on the same point.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::{NO_RIVAL, distance};
use crate::chunks;
use crate::error::{Result, filled};
use crate::linalg::{Packed, dot64, score_tolerance};

/// Per sample: its class, its distance to the nearest other centre, and that
/// centre's class.
pub struct Nearest {
    pub class: Vec<usize>,
    pub outer: Vec<f64>,
    pub rival: Vec<usize>,
}

/// Classes and rivals of every sample for `centres` (ascending ids; class
/// `c` is `centres[c]`).
pub fn nearest_centres(features: ArrayView2<f32>, centres: &[usize]) -> Result<Nearest> {
    let n = features.nrows();
    let points = features.select(Axis(0), centres);
    let half_norms: Vec<f32> = points
        .rows()
        .into_iter()
        .map(|r| {
            let r = r.to_slice().expect("contiguous rows");
            (dot64(r, r) / 2.0) as f32
        })
        .collect();
    // Screened scores can be off by the product's error plus the rounding of the half norms.
    let tolerance = score_tolerance(features.ncols()) + 4.0 * f32::EPSILON;
    let mut class = filled(n, 0usize, "the classes")?;
    let mut outer = filled(n, 0f64, "the classes")?;
    let mut rival = filled(n, 0usize, "the classes")?;
    let packed = Packed::new(points.view());
    class
        .par_chunks_mut(chunks::SCAN)
        .zip(outer.par_chunks_mut(chunks::SCAN))
        .zip(rival.par_chunks_mut(chunks::SCAN))
        .enumerate()
        .for_each_init(Vec::new, |wide, (t, ((class, outer), rival))| {
            let first = t * chunks::SCAN;
            let rows = features.slice(ndarray::s![first..first + class.len(), ..]);
            let mut scores = Array2::<f32>::zeros((class.len(), centres.len()));
            packed.product_into(rows, wide, &mut scores.view_mut());
            for (r, mut s) in scores.rows_mut().into_iter().enumerate() {
                for (v, h) in s.iter_mut().zip(&half_norms) {
                    *v -= h;
                }
                let sample = first + r;
                let own = centres.binary_search(&sample).ok();
                let found = resolve(features, sample, own, centres, s.as_slice().expect("contiguous"), tolerance);
                (class[r], outer[r], rival[r]) = found;
            }
        });
    Ok(Nearest { class, outer, rival })
}

/// The class, outer distance and rival of `sample` from its screened
/// `scores` (higher is nearer), `own` being its class if it is a centre.
fn resolve(
    features: ArrayView2<f32>,
    sample: usize,
    own: Option<usize>,
    centres: &[usize],
    scores: &[f32],
    tolerance: f32,
) -> (usize, f64, usize) {
    let (mut best, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &s in scores {
        if s > best {
            second = best;
            best = s;
        } else if s > second {
            second = s;
        }
    }
    let floor = if scores.len() > 1 { second - tolerance } else { f32::NEG_INFINITY };
    let exact: Vec<(f64, usize)> = (0..scores.len())
        .filter(|&c| scores[c] >= floor)
        .map(|c| (distance(features, sample, centres[c]), c))
        .collect();
    let nearest = |skip: Option<usize>| {
        exact.iter().filter(|(_, c)| Some(*c) != skip).fold(None, |b: Option<(f64, usize)>, &(d, c)| match b {
            Some((bd, _)) if bd <= d => b,
            _ => Some((d, c)),
        })
    };
    let class = own.unwrap_or_else(|| nearest(None).expect("at least one centre").1);
    let (outer, rival) = nearest(Some(class)).unwrap_or((NO_RIVAL, class));
    (class, outer, rival)
}
