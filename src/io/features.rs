//! Reading feature arrays into the pool: one `f32` matrix of unit rows.
//!
//! `ndarray-npy` reads a whole array of one fixed element type; this reader
//! exists for what it cannot do: the pool may be larger than memory allows
//! twice over, comes as float16, float32 or float64, in either byte order
//! and memory order, in several shards (files, standard input, `.npz`
//! members), sometimes with a label column. So rows are read in chunks
//! straight into the one matrix, checked (a NaN is reported by file and
//! row) and L2-normalised on the way.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::npy::{Dtype, Header, float_dtype, read_header, shape_text};
use super::source::{CHUNK_BYTES, Data, Provenance, Source, is_stdin, reason};
use crate::error::{Error, Result, reserved};

/// The longest header accepted from a stream, whose length is unknown.
const STREAM_HEADER_LIMIT: u64 = 1 << 20;

/// A loaded pool: unit-norm features and, when a label column was dropped, its values.
pub struct Pool {
    pub features: Array2<f32>,
    pub label_column: Option<Vec<f32>>,
    /// Each input's size and hash, in order.
    pub provenance: Vec<Provenance>,
    /// Each shard's path and first row in the pool, for messages about a row.
    shards: Vec<Rows>,
}

impl Pool {
    /// An error about sample `row` of the pool, naming its file and its row there.
    pub fn row_error(&self, row: usize, what: String) -> Error {
        let shard = self.shards.iter().rev().find(|s| s.first_row <= row).expect("row 0 starts the first input read");
        shard.error(row - shard.first_row, what)
    }
}

/// One opened input with its validated header.
struct Shard {
    source: Source,
    header: Header,
    dtype: Dtype,
    big_endian: bool,
    rows: usize,
    cols: usize,
}

impl Shard {
    fn open(spec: &Path) -> Result<Shard> {
        let mut source = Source::open(spec)?;
        let limit = source.len().unwrap_or(STREAM_HEADER_LIMIT);
        let header = source.header(|reader| read_header(spec, reader, limit))?;
        let (dtype, big_endian) = float_dtype(&header.descr).map_err(|e| Error::input(spec, e))?;
        let [rows, cols] = header.shape[..] else {
            let shape = shape_text(&header.shape);
            return Err(Error::input(spec, format!("expected a 2-D array (samples x features), found shape {shape}")));
        };
        if let Some(len) = source.len() {
            check_length(spec, &header, rows, cols, dtype, len)?;
        }
        Ok(Shard { source, header, dtype, big_endian, rows, cols })
    }
}

/// The data must fill the rest of the input exactly.
fn check_length(spec: &Path, header: &Header, rows: usize, cols: usize, dtype: Dtype, len: u64) -> Result<()> {
    // In u128: a damaged shape can promise more than any usize can count.
    let offset = header.data_offset as u128;
    let expected = offset + rows as u128 * cols as u128 * dtype.size() as u128;
    let len = u128::from(len);
    if len < expected {
        let (promised, holds) = (expected - offset, len.saturating_sub(offset));
        return Err(Error::input(
            spec,
            format!(
                "truncated: the header promises {rows} x {cols} values ({promised} bytes of data) but the file holds {holds}"
            ),
        ));
    }
    if len > expected {
        return Err(Error::input(spec, format!("{} unexpected bytes after the array data", len - expected)));
    }
    Ok(())
}

/// Loads one or more inputs (concatenated in order) as unit-norm `f32` rows.
///
/// Values are rounded to `f32` first and then normalised in `f64`, so the
/// result does not depend on the file's dtype width or memory order beyond
/// that rounding. With `drop_last_column` the last column (a label) is kept
/// apart instead of being used as a feature.
pub fn load_features(paths: &[PathBuf], drop_last_column: bool) -> Result<Pool> {
    load_share(paths, drop_last_column, 0, 1).map(|share| share.pool)
}

/// One rank's rows of the inputs, and where they sit in the whole pool.
pub struct Share {
    pub pool: Pool,
    /// The global id of the first row held.
    pub first: usize,
    /// Samples in the whole pool.
    pub n: usize,
}

/// The rows rank `rank` of `ranks` holds: whole inputs when there are at
/// least as many as ranks (each to the rank whose even share of the rows
/// it starts in; a rank may get none), else an even share of the rows,
/// which may split an input. Only those rows are read.
pub fn load_share(paths: &[PathBuf], drop_last_column: bool, rank: usize, ranks: usize) -> Result<Share> {
    if paths.iter().filter(|p| is_stdin(p)).count() > 1 {
        return Err(Error::usage("--features", "standard input (-) can be given only once"));
    }
    let mut shards = paths.iter().map(|p| Shard::open(p)).collect::<Result<Vec<_>>>()?;
    let dim = feature_dim(&shards[0], drop_last_column)?;
    for shard in &shards[1..] {
        if feature_dim(shard, drop_last_column)? != dim {
            let first = &shards[0];
            return Err(Error::input(
                &shard.source.path,
                format!("has {} columns but {} has {}", shard.cols, first.source.path.display(), first.cols),
            ));
        }
    }
    let starts: Vec<usize> =
        shards.iter().scan(0usize, |at, s| Some(std::mem::replace(at, at.saturating_add(s.rows)))).collect();
    let total = shards.iter().try_fold(0usize, |n, s| n.checked_add(s.rows)).unwrap_or(usize::MAX);
    let held = held_rows(&shards.iter().map(|s| s.rows).collect::<Vec<_>>(), total, rank, ranks);
    let n = held.len();
    // Reserved, not filled: rows are appended as they arrive, so a stream
    // whose header promises more than it holds costs no memory.
    let mut out: Vec<f32> = reserved(n.saturating_mul(dim), "the features")?;
    let mut labels: Vec<f32> = if drop_last_column { reserved(n, "the label column")? } else { Vec::new() };
    let mut located = Vec::with_capacity(shards.len());
    for (shard, &start) in shards.iter_mut().zip(&starts) {
        let skip = held.start.clamp(start, start + shard.rows) - start;
        let take = held.end.clamp(start, start + shard.rows) - start - skip;
        if take < shard.rows {
            shard.source.stop_early();
        }
        if take == 0 {
            continue;
        }
        let rows = Rows {
            path: shard.source.path.clone(),
            first_row: out.len() / dim,
            skipped: skip,
            global: start + skip,
            sharded: paths.len() > 1 || ranks > 1,
        };
        let layout = Layout { dtype: shard.dtype, big_endian: shard.big_endian, rows: take, cols: shard.cols, dim };
        if shard.header.fortran_order {
            if take < shard.rows {
                return Err(Error::input(
                    &shard.source.path,
                    "is in Fortran order and would be split across ranks; save it in C order, or give at least as many shards as ranks",
                ));
            }
            let at = out.len();
            out.resize(at + shard.rows * dim, 0.0);
            shard.source.data(|r| read_fortran(&layout, r, &mut out[at..], &mut labels, &rows))?;
        } else {
            if skip > 0 {
                shard.source.skip((skip * shard.cols * shard.dtype.size()) as u64)?;
            }
            shard.source.data(|r| read_c_order(&layout, r, &mut out, &mut labels, &rows))?;
        }
        normalize_rows(&mut out[rows.first_row * dim..], dim, &rows)?;
        located.push(rows);
    }
    let features = Array2::from_shape_vec((n, dim), out).expect("one row per sample");
    let provenance = shards.iter().map(|s| s.source.provenance()).collect();
    let pool = Pool { features, label_column: drop_last_column.then_some(labels), provenance, shards: located };
    Ok(Share { pool, first: held.start, n: total })
}

/// The global rows rank `rank` of `ranks` holds, for inputs of `rows` rows.
fn held_rows(rows: &[usize], total: usize, rank: usize, ranks: usize) -> std::ops::Range<usize> {
    let even = |r: usize| crate::comm::share(total, r, ranks);
    if rows.len() < ranks {
        return even(rank);
    }
    let mine = even(rank);
    let mut start = 0;
    let (mut first, mut end) = (None, 0);
    for &r in rows {
        if mine.contains(&start) {
            first.get_or_insert(start);
            end = start + r;
        }
        start += r;
    }
    first.map_or(0..0, |f| f..end)
}

fn feature_dim(shard: &Shard, drop_last_column: bool) -> Result<usize> {
    let path = &shard.source.path;
    if shard.rows == 0 {
        return Err(Error::input(path, "has no rows (shape has 0 samples)"));
    }
    let dim = shard.cols.saturating_sub(usize::from(drop_last_column));
    if dim == 0 {
        let why = if drop_last_column { " after dropping the label column" } else { "" };
        return Err(Error::input(path, format!("has no feature columns{why}")));
    }
    Ok(dim)
}

/// Where the rows read from one input sit, for error messages.
struct Rows {
    path: PathBuf,
    /// The first row's place among the rows this process holds.
    first_row: usize,
    /// Rows of the input before the first one read.
    skipped: usize,
    /// The first row's global sample id.
    global: usize,
    sharded: bool,
}

impl Rows {
    /// An error about the `row`-th row read from this input.
    fn error(&self, row: usize, what: String) -> Error {
        let global = if self.sharded { format!(" (sample {} overall)", self.global + row) } else { String::new() };
        Error::input(&self.path, format!("row {}{global} {what}", self.skipped + row))
    }

    fn read_error(&self, e: &std::io::Error) -> Error {
        Error::input(&self.path, reason(e))
    }
}

/// How one shard's values are laid out.
struct Layout {
    dtype: Dtype,
    big_endian: bool,
    rows: usize,
    cols: usize,
    /// Feature columns (the rest is the label).
    dim: usize,
}

/// Appends `bytes`, decoded as values of `layout`'s dtype, to `out` as
/// `f32`. A finite float64 beyond float32's range becomes infinite, so
/// [`f32::is_finite`] afterwards tells what float32 cannot hold.
fn decode(layout: &Layout, bytes: &[u8], out: &mut Vec<f32>) {
    let be = layout.big_endian;
    match layout.dtype {
        Dtype::F16 => out.extend(bytes.chunks_exact(2).map(|b| {
            let b: [u8; 2] = b.try_into().expect("two bytes");
            f16_to_f32(if be { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
        })),
        Dtype::F32 => out.extend(bytes.chunks_exact(4).map(|b| {
            let b: [u8; 4] = b.try_into().expect("four bytes");
            if be { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) }
        })),
        Dtype::F64 => out.extend(bytes.chunks_exact(8).map(|b| {
            let b: [u8; 8] = b.try_into().expect("eight bytes");
            (if be { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) }) as f32
        })),
    }
}

/// Appends the rows in `bytes`, decoded, to `out`, or fails with
/// `error(row, what)` at the first feature value float32 cannot hold.
fn decode_rows(
    layout: &Layout,
    bytes: &[u8],
    out: &mut Vec<f32>,
    error: impl Fn(usize, String) -> Error,
) -> Result<()> {
    let start = out.len();
    decode(layout, bytes, out);
    match first_not_finite(&out[start..], layout.cols, layout.dim) {
        Some((r, col)) => Err(error(r, not_finite(out[start + r * layout.cols + col], col))),
        None => Ok(()),
    }
}

/// The first value of `values` (rows of `cols`, the first `dim` of each
/// checked) that float32 cannot hold, as (row, column).
fn first_not_finite(values: &[f32], cols: usize, dim: usize) -> Option<(usize, usize)> {
    values.chunks_exact(cols).enumerate().find_map(|(r, row)| {
        // A row at a time, without a branch per value, so it vectorises.
        let features = &row[..dim];
        let all_finite = features.iter().fold(true, |ok, v| ok & v.is_finite());
        (!all_finite).then(|| (r, features.iter().position(|v| !v.is_finite()).expect("one is not finite")))
    })
}

/// An IEEE half-precision value, exactly, as `f32` (every half is one).
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let fraction = u32::from(bits & 0x3ff);
    match exponent {
        // Zero and subnormals: fraction · 2^-24, exact in f32.
        0 => {
            let magnitude = fraction as f32 * f32::from_bits(0x3380_0000); // 2^-24
            if sign == 0 { magnitude } else { -magnitude }
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (fraction << 13)),
        _ => f32::from_bits(sign | ((exponent + 112) << 23) | (fraction << 13)),
    }
}

fn not_finite(value: f32, col: usize) -> String {
    let what = if value.is_nan() { "NaN".to_string() } else { format!("{value} (not finite in float32)") };
    format!("has a non-finite value in column {col}: {what}")
}

/// Appends rows to `out`; columns past `dim` (the label) go to `labels`.
fn read_c_order(
    layout: &Layout,
    data: &mut Data,
    out: &mut Vec<f32>,
    labels: &mut Vec<f32>,
    rows: &Rows,
) -> Result<()> {
    let row_bytes = layout.cols * layout.dtype.size();
    let rows_per_chunk = (CHUNK_BYTES / row_bytes).max(1);
    let mut bytes = vec![0u8; rows_per_chunk * row_bytes];
    let mut values = Vec::new();
    let labelled = layout.cols > layout.dim;
    for first in (0..layout.rows).step_by(rows_per_chunk) {
        let count = rows_per_chunk.min(layout.rows - first);
        let decoded = data.chunk(&mut bytes[..count * row_bytes], |chunk| {
            if !labelled {
                // The rows go straight into `out`.
                return decode_rows(layout, chunk, out, |r, what| rows.error(first + r, what));
            }
            values.clear();
            decode_rows(layout, chunk, &mut values, |r, what| rows.error(first + r, what))?;
            for row in values.chunks_exact(layout.cols) {
                out.extend_from_slice(&row[..layout.dim]);
                labels.extend_from_slice(&row[layout.dim..]);
            }
            Ok(())
        });
        decoded.map_err(|e| rows.read_error(&e))??;
    }
    Ok(())
}

/// Fills `dest` (this shard's rows) column by column.
fn read_fortran(layout: &Layout, data: &mut Data, dest: &mut [f32], labels: &mut Vec<f32>, rows: &Rows) -> Result<()> {
    let mut bytes = vec![0u8; layout.rows * layout.dtype.size()];
    let mut values = Vec::new();
    for col in 0..layout.cols {
        let decoded = data.chunk(&mut bytes, |column| {
            values.clear();
            decode(layout, column, &mut values);
            if col >= layout.dim {
                labels.extend_from_slice(&values);
                return Ok(());
            }
            for (row, &v) in values.iter().enumerate() {
                if !v.is_finite() {
                    return Err(rows.error(row, not_finite(v, col)));
                }
                dest[row * layout.dim + col] = v;
            }
            Ok(())
        });
        decoded.map_err(|e| rows.read_error(&e))??;
    }
    Ok(())
}

/// Divides every row of `dest` by its norm (its squares summed in float64,
/// in column order), in parallel; fails at the first row of zeros.
fn normalize_rows(dest: &mut [f32], dim: usize, rows: &Rows) -> Result<()> {
    use rayon::prelude::*;
    let zero = dest
        .par_chunks_mut(dim * NORMALISED)
        .enumerate()
        .filter_map(|(b, block)| normalize_block(block, dim).map(|r| b * NORMALISED + r))
        .min();
    match zero {
        Some(row) => Err(rows.error(row, "is all zeros and has no direction to normalise".into())),
        None => Ok(()),
    }
}

/// Rows per parallel task of [`normalize_rows`].
const NORMALISED: usize = 1024;
/// Rows whose sums run side by side: one row's additions each wait on the
/// last, several rows' chains overlap.
const INTERLEAVED: usize = 8;

/// [`normalize_rows`] on one block; returns its first row of zeros, if any.
fn normalize_block(block: &mut [f32], dim: usize) -> Option<usize> {
    for (g, group) in block.chunks_mut(dim * INTERLEAVED).enumerate() {
        let mut sums = [0.0f64; INTERLEAVED];
        if group.len() == dim * INTERLEAVED {
            for k in 0..dim {
                for (r, sum) in sums.iter_mut().enumerate() {
                    let v = f64::from(group[r * dim + k]);
                    *sum += v * v;
                }
            }
        } else {
            for (sum, values) in sums.iter_mut().zip(group.chunks_exact(dim)) {
                *sum = values.iter().fold(0.0, |sum, &v| sum + f64::from(v) * f64::from(v));
            }
        }
        for (r, (values, sum)) in group.chunks_exact_mut(dim).zip(sums).enumerate() {
            let norm = sum.sqrt();
            if norm == 0.0 {
                return Some(g * INTERLEAVED + r);
            }
            for v in values.iter_mut() {
                *v = (f64::from(*v) / norm) as f32;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row divided by the square root of its squares, summed in column order.
    fn normalised_literally(values: &[f32], dim: usize) -> Vec<f32> {
        values
            .chunks_exact(dim)
            .flat_map(|row| {
                let norm = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
                row.iter().map(move |&v| (f64::from(v) / norm) as f32).collect::<Vec<_>>()
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn rows_are_normalised_as_one_at_a_time(
            n in 1usize..2100, dim in 1usize..20, seed in 0u64..1000, zero_at in proptest::option::of(0usize..2100),
            coarse: bool,
        ) {
            use rand::{RngExt, SeedableRng};
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
            // Coarse values: repeated rows and exact ties among the sums;
            // else any, whose sums round differently in another order.
            let mut values: Vec<f32> = (0..n * dim)
                .map(|_| if coarse { f32::from(rng.random_range(-4i8..5)) / 4.0 } else { rng.random_range(-3.0..3.0f32) })
                .collect();
            values.chunks_exact_mut(dim).filter(|r| r.iter().all(|&v| v == 0.0)).for_each(|r| r[0] = 1.0);
            let zero = zero_at.filter(|&z| z < n);
            if let Some(z) = zero {
                values[z * dim..(z + 1) * dim].fill(0.0);
                // Later rows of zeros too, in the same parallel block and
                // the next: the first is the one reported.
                for later in [z + 7, z + NORMALISED + 7].into_iter().filter(|&l| l < n) {
                    values[later * dim..(later + 1) * dim].fill(0.0);
                }
            }
            let rows = Rows { path: "pool.npy".into(), first_row: 0, skipped: 0, global: 0, sharded: false };
            let mut got = values.clone();
            match (normalize_rows(&mut got, dim, &rows), zero) {
                (Ok(()), None) => {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    proptest::prop_assert_eq!(bits(&got), bits(&normalised_literally(&values, dim)));
                }
                (Err(e), Some(z)) => proptest::prop_assert!(e.to_string().contains(&format!("row {z} ")), "{}", e),
                (result, zero) => proptest::prop_assert!(false, "{:?} with a zero row at {:?}", result.err(), zero),
            }
        }
    }

    #[test]
    fn decoded_rows_fail_at_the_first_feature_float32_cannot_hold() {
        let layout = |dtype, cols, dim| Layout { dtype, big_endian: false, rows: 3, cols, dim };
        let error = |r: usize, what: String| Error::input(Path::new("pool.npy"), format!("row {r} {what}"));
        let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        // A finite float64 beyond float32's range, in row 1, column 1.
        let bytes = f64s(&[0.5, 1.0, 2.0, 1e300, 3.0, 4.0]);
        let mut out = vec![9.0];
        let e = decode_rows(&layout(Dtype::F64, 2, 2), &bytes, &mut out, error).unwrap_err().to_string();
        assert!(e.contains("row 1 has a non-finite value in column 1: inf (not finite in float32)"), "{e}");
        // The label column may hold anything; a feature may not.
        let bytes = f64s(&[0.5, f64::NAN, 2.0, f64::INFINITY, 3.0, 7.0]);
        let mut out = vec![9.0];
        assert!(decode_rows(&layout(Dtype::F64, 2, 1), &bytes, &mut out, error).is_ok());
        assert_eq!(out.len(), 7);
        assert_eq!([out[0], out[1], out[3], out[5], out[6]], [9.0, 0.5, 2.0, 3.0, 7.0]);
        let e = decode_rows(&layout(Dtype::F64, 2, 2), &bytes, &mut vec![], error).unwrap_err().to_string();
        assert!(e.contains("row 0 has a non-finite value in column 1: NaN"), "{e}");
        let f32s: Vec<u8> = [1.0f32, -2.5, 0.25, f32::NEG_INFINITY].iter().flat_map(|x| x.to_le_bytes()).collect();
        let e = decode_rows(&layout(Dtype::F32, 2, 2), &f32s, &mut vec![], error).unwrap_err().to_string();
        assert!(e.contains("row 1 has a non-finite value in column 1: -inf"), "{e}");
    }

    #[test]
    fn every_half_converts_exactly() {
        for bits in 0..=u16::MAX {
            let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
            let (exponent, fraction) = (i32::from((bits >> 10) & 0x1f), f64::from(bits & 0x3ff));
            let want = match exponent {
                0 => sign * fraction * 2f64.powi(-24),
                31 if fraction == 0.0 => sign * f64::INFINITY,
                31 => f64::NAN,
                e => sign * (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
            };
            let got = f16_to_f32(bits);
            if want.is_nan() {
                assert!(got.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(f64::from(got), want, "{bits:#06x}");
                assert_eq!(got.is_sign_negative(), sign < 0.0, "{bits:#06x}");
            }
        }
    }
}
