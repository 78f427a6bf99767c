//! An SVG of the pool on its first two principal components, with the
//! selection drawn on top, so a person can see what the selection covers.

use std::fmt::Write;

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Background points drawn at most (evenly spaced through the pool).
pub const MAX_BACKGROUND: usize = 20_000;
const SIZE: f64 = 800.0;
const MARGIN: f64 = 40.0;
const POWER_STEPS: usize = 300;

/// The SVG document for `features` with `selected` highlighted.
pub fn svg(features: ArrayView2<f32>, selected: &[usize], title: &str) -> String {
    let n = features.nrows();
    let background: Vec<usize> = if n <= MAX_BACKGROUND {
        (0..n).collect()
    } else {
        (0..MAX_BACKGROUND).map(|j| j * n / MAX_BACKGROUND).collect()
    };
    let sample = features.select(Axis(0), &background).mapv(f64::from);
    let mean = sample.mean_axis(Axis(0)).expect("a non-empty pool");
    let axes = principal_axes(&(&sample - &mean), 2);
    let project =
        |ids: &[usize]| -> Array2<f64> { (features.select(Axis(0), ids).mapv(f64::from) - &mean).dot(&axes.t()) };
    let (back, front) = (project(&background), project(selected));

    let (lo, hi) = bounds(&back, &front);
    let to_px = |v: f64, axis: usize| {
        let span = (hi[axis] - lo[axis]).max(1e-12);
        let t = (v - lo[axis]) / span;
        if axis == 0 { MARGIN + t * (SIZE - 2.0 * MARGIN) } else { SIZE - MARGIN - t * (SIZE - 2.0 * MARGIN) }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">"#
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="24" font-family="sans-serif" font-size="15" fill="#222">{}</text>"##,
        escape(title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{MARGIN}" y="{}" font-family="sans-serif" font-size="12" fill="#555">grey: {} of {n} samples; red: the {} selected; axes: first two principal components</text>"##,
        SIZE - 12.0,
        background.len(),
        selected.len()
    );
    let _ = writeln!(out, r##"<g fill="#9a9a9a" fill-opacity="0.45">"##);
    for p in back.rows() {
        let _ = writeln!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="1.6"/>"#, to_px(p[0], 0), to_px(p[1], 1));
    }
    let _ = writeln!(out, "</g>");
    let _ = writeln!(out, r##"<g fill="#d62728" stroke="#ffffff" stroke-width="0.8">"##);
    for p in front.rows() {
        let _ = writeln!(out, r#"<circle cx="{:.1}" cy="{:.1}" r="4"/>"#, to_px(p[0], 0), to_px(p[1], 1));
    }
    let _ = writeln!(out, "</g>\n</svg>");
    out
}

/// The `count` leading eigenvectors of `centred`ᵀ`centred` (rows of the
/// result), by power iteration with deflation from a fixed start, so the
/// plot is the same every run.
fn principal_axes(centred: &Array2<f64>, count: usize) -> Array2<f64> {
    let d = centred.ncols();
    let mut cov = centred.t().dot(centred) / centred.nrows() as f64;
    let mut axes = Array2::<f64>::zeros((count, d));
    for a in 0..count {
        let mut v = Array1::from_shape_fn(d, |j| 1.0 + (j as f64 * 0.618).fract());
        for _ in 0..POWER_STEPS {
            let next = cov.dot(&v);
            let norm = next.dot(&next).sqrt();
            if norm == 0.0 {
                break;
            }
            v = next / norm;
        }
        let lambda = v.dot(&cov.dot(&v));
        // Remove this direction before finding the next.
        for i in 0..d {
            for j in 0..d {
                cov[[i, j]] -= lambda * v[i] * v[j];
            }
        }
        // A sign convention, so runs agree.
        let sign = if v.iter().fold(0.0, |s, x| s + x) < 0.0 { -1.0 } else { 1.0 };
        axes.row_mut(a).assign(&(v * sign));
    }
    axes
}

fn bounds(a: &Array2<f64>, b: &Array2<f64>) -> ([f64; 2], [f64; 2]) {
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for row in a.rows().into_iter().chain(b.rows()) {
        for axis in 0..2 {
            lo[axis] = lo[axis].min(row[axis]);
            hi[axis] = hi[axis].max(row[axis]);
        }
    }
    (lo, hi)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn principal_axes_find_the_spread() {
        // Points spread along (1, 1, 0) mostly, then (uncorrelated) along (0, 0, 1).
        let pts = array![[3.0, 3.0, 0.5], [-3.0, -3.0, 0.5], [1.0, 1.0, -0.5], [-1.0, -1.0, -0.5]];
        let centred = &pts - &pts.mean_axis(Axis(0)).unwrap();
        let axes = principal_axes(&centred, 2);
        let h = 0.5f64.sqrt();
        assert!((axes[[0, 0]] - h).abs() < 1e-9 && (axes[[0, 1]] - h).abs() < 1e-9 && axes[[0, 2]].abs() < 1e-9);
        assert!(axes[[1, 0]].abs() < 1e-6 && (axes[[1, 2]].abs() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn svg_draws_every_selected_sample_and_caps_the_background() {
        let f = Array2::from_shape_fn((25_000, 3), |(i, j)| ((i * 7 + j * 13) % 101) as f32 + 1.0);
        let doc = svg(f.view(), &[0, 5, 24_999], "a <test>");
        assert!(doc.starts_with("<svg") && doc.trim_end().ends_with("</svg>"));
        assert_eq!(doc.matches(r#"r="4""#).count(), 3);
        assert_eq!(doc.matches(r#"r="1.6""#).count(), MAX_BACKGROUND);
        assert!(doc.contains("a &lt;test&gt;"));
    }
}
