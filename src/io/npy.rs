//! Reading `.npy` feature and label files.
//!
//! Headers are parsed by `ndarray-npy`. The data is read here, because the
//! crate reads a whole array of one fixed element type: the pool can be
//! larger than memory allows twice over, comes as float32 or float64, in
//! either byte order and memory order, in several shards, sometimes with a
//! label column; so rows are read in chunks straight into the single `f32`
//! matrix the methods use, checked (a NaN is reported by file and row) and
//! L2-normalised on the way. Labels come in any integer width, for the same
//! reason. Anything else gets an error that says what was found.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use ndarray::Array2;
use ndarray_npy::npy::header::Header as NpyHeader;

use crate::error::{Error, Result, filled};

const MAGIC: &[u8] = b"\x93NUMPY";
/// Bytes read per chunk of rows; large enough to amortise syscalls.
const CHUNK_BYTES: usize = 1 << 20;

/// Element type of a supported array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

/// What the header of an `.npy` file says about its array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The dtype as NumPy writes it, e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the first data byte from the start of the file.
    pub data_offset: usize,
}

/// Reads and checks the header of one file of `file_len` bytes; the reader
/// is left at the data. The dictionary is parsed by `ndarray-npy`; its
/// length is checked against the file first, so a damaged length field
/// cannot ask for more memory than the file holds.
pub fn read_header(path: &Path, reader: &mut impl Read, file_len: u64) -> Result<Header> {
    let bad = |msg: String| Error::input(path, msg);
    let mut preamble = [0u8; 12];
    reader
        .read_exact(&mut preamble[..8])
        .map_err(|_| bad("not an .npy file (too short for the NumPy magic string)".into()))?;
    if &preamble[..6] != MAGIC {
        return Err(bad("not an .npy file (missing the NumPy magic string)".into()));
    }
    let len_bytes = match preamble[6] {
        1 => 2,
        2 | 3 => 4,
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    reader.read_exact(&mut preamble[8..8 + len_bytes]).map_err(|_| bad("truncated .npy header".into()))?;
    let mut len = [0u8; 4];
    len[..len_bytes].copy_from_slice(&preamble[8..8 + len_bytes]);
    let header_len = u64::from(u32::from_le_bytes(len));
    let data_offset = 8 + len_bytes as u64 + header_len;
    if data_offset > file_len {
        return Err(bad(format!("truncated .npy header: it claims {header_len} bytes, the file holds {file_len}")));
    }
    let mut whole = (&preamble[..8 + len_bytes]).chain(reader.take(header_len));
    let parsed =
        NpyHeader::from_reader(&mut whole).map_err(|e| bad(format!("unreadable .npy header: {}", one_line(&e))))?;
    let descr = match (parsed.type_descriptor.as_string(), parsed.type_descriptor.as_list()) {
        // Printable, since it may end up in a one-line message.
        (Some(descr), _) => descr.chars().map(|c| if c.is_control() { '?' } else { c }).collect(),
        (None, Some(_)) => {
            return Err(bad("unsupported dtype: a structured (record) array; save a plain numeric array".into()));
        }
        (None, None) => return Err(bad(format!("unsupported dtype {}", parsed.type_descriptor))),
    };
    Ok(Header {
        descr,
        fortran_order: parsed.layout.is_fortran(),
        shape: parsed.shape,
        data_offset: usize::try_from(data_offset).expect("checked against the file length"),
    })
}

/// The byte order and type code of a descr: `('>' == big endian, "f4")`.
fn split_descr(descr: &str) -> (bool, &str) {
    match descr.chars().next() {
        Some(c @ ('<' | '>' | '=' | '|')) => (c == '>', &descr[1..]),
        _ => (false, descr),
    }
}

/// The float type of a feature file, or why it is not one.
fn float_dtype(descr: &str) -> std::result::Result<(Dtype, bool), String> {
    let (big_endian, kind) = split_descr(descr);
    match kind {
        "f4" => Ok((Dtype::F32, big_endian)),
        "f8" => Ok((Dtype::F64, big_endian)),
        _ => Err(format!(
            "unsupported dtype '{descr}' ({}); activeft reads float32 or float64, \
             convert with arr.astype(np.float32)",
            describe_kind(kind)
        )),
    }
}

fn describe_kind(kind: &str) -> &'static str {
    match kind.chars().next() {
        Some('f') => "a float of another width",
        Some('i') => "signed integers",
        Some('u') => "unsigned integers",
        Some('b') => "booleans",
        Some('c') => "complex numbers",
        Some('O') => "Python objects",
        Some('U' | 'S' | 'a') => "strings",
        Some('M' | 'm') => "dates or times",
        _ => "not a numeric type",
    }
}

/// Reads integer class labels: a 1-D array (or one column) of any integer dtype.
pub fn load_labels(path: &Path) -> Result<Vec<i64>> {
    if path.is_dir() {
        return Err(Error::input(path, "is a directory, not an .npy file"));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::input(path, io_reason(&e)))?;
    let header = read_header(path, &mut &bytes[..], bytes.len() as u64)?;
    let bad = |msg: String| Error::input(path, msg);
    let n = match header.shape[..] {
        [n] | [n, 1] => n,
        _ => return Err(bad(format!("expected a 1-D array of labels, found shape {}", shape_text(&header.shape)))),
    };
    let (big_endian, kind) = split_descr(&header.descr);
    let (signed, size) = match kind.as_bytes() {
        [b'i', s] => (true, (s - b'0') as usize),
        [b'u', s] => (false, (s - b'0') as usize),
        _ => {
            return Err(bad(format!(
                "labels must be integers, found dtype '{}' ({}); convert with labels.astype(np.int64)",
                header.descr,
                describe_kind(kind)
            )));
        }
    };
    if ![1, 2, 4, 8].contains(&size) {
        return Err(bad(format!("unsupported integer dtype '{}'", header.descr)));
    }
    let data = &bytes[header.data_offset..];
    if Some(data.len()) != n.checked_mul(size) {
        let promised = n as u128 * size as u128;
        return Err(bad(format!("holds {} bytes of data; the header promises {promised}", data.len())));
    }
    data.chunks_exact(size)
        .enumerate()
        .map(|(i, b)| {
            let mut raw = [0u8; 8];
            if big_endian {
                raw[8 - size..].copy_from_slice(b);
                raw.reverse();
            } else {
                raw[..size].copy_from_slice(b);
            }
            let unsigned = u64::from_le_bytes(raw);
            let value = if signed {
                // Sign-extend from `size` bytes.
                let shift = 64 - 8 * size as u32;
                ((unsigned << shift) as i64) >> shift
            } else {
                i64::try_from(unsigned).map_err(|_| bad(format!("label {i} ({unsigned}) is too large")))?
            };
            Ok(value)
        })
        .collect()
}

/// One opened feature file with its validated header.
struct Shard {
    path: PathBuf,
    header: Header,
    dtype: Dtype,
    big_endian: bool,
    rows: usize,
    cols: usize,
    reader: BufReader<File>,
}

impl Shard {
    fn open(path: &Path) -> Result<Shard> {
        if path.is_dir() {
            return Err(Error::input(path, "is a directory, not an .npy file"));
        }
        let file = File::open(path).map_err(|e| Error::input(path, io_reason(&e)))?;
        let file_len = file.metadata().map_err(|e| Error::input(path, io_reason(&e)))?.len();
        let mut reader = BufReader::with_capacity(CHUNK_BYTES, file);
        let header = read_header(path, &mut reader, file_len)?;
        let (dtype, big_endian) = float_dtype(&header.descr).map_err(|e| Error::input(path, e))?;
        let (rows, cols) = match header.shape[..] {
            [rows, cols] => (rows, cols),
            _ => {
                return Err(Error::input(
                    path,
                    format!("expected a 2-D array (samples x features), found shape {}", shape_text(&header.shape)),
                ));
            }
        };
        // In u128: a damaged shape can promise more than any usize can count.
        let expected = header.data_offset as u128 + rows as u128 * cols as u128 * dtype.size() as u128;
        let file_len = u128::from(file_len);
        if file_len < expected {
            return Err(Error::input(
                path,
                format!(
                    "truncated: the header promises {rows} x {cols} values ({} bytes of data) \
                     but the file holds {}",
                    expected - header.data_offset as u128,
                    file_len.saturating_sub(header.data_offset as u128)
                ),
            ));
        }
        if file_len > expected {
            return Err(Error::input(path, format!("{} unexpected bytes after the array data", file_len - expected)));
        }
        Ok(Shard { path: path.to_path_buf(), header, dtype, big_endian, rows, cols, reader })
    }
}

/// A parser's message (which may quote the header over several lines) as
/// one printable line.
fn one_line(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no details");
    first.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>().trim_end_matches(':').into()
}

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => format!("cannot read: {e}"),
    }
}

/// A loaded pool: unit-norm features and, when a label column was dropped, its values.
pub struct Pool {
    pub features: Array2<f32>,
    pub label_column: Option<Vec<f32>>,
    /// Each shard's path and first row in the pool, for messages about a row.
    shards: Vec<Rows>,
}

impl Pool {
    /// An error about sample `row` of the pool, naming its file and its row there.
    pub fn row_error(&self, row: usize, what: String) -> Error {
        let shard = self.shards.iter().rev().find(|s| s.first_row <= row).expect("row 0 starts the first shard");
        shard.error(row - shard.first_row, what)
    }
}

/// Loads one or more shards (concatenated in order) as unit-norm `f32` rows.
///
/// Values are rounded to `f32` first and then normalised in `f64`, so the
/// result does not depend on the file's dtype width or memory order beyond
/// that rounding. With `drop_last_column` the last column (a label) is kept
/// apart instead of being used as a feature.
pub fn load_features(paths: &[PathBuf], drop_last_column: bool) -> Result<Pool> {
    let mut shards = paths.iter().map(|p| Shard::open(p)).collect::<Result<Vec<_>>>()?;
    let dim = feature_dim(&shards[0], drop_last_column)?;
    for shard in &shards[1..] {
        let d = feature_dim(shard, drop_last_column)?;
        if d != dim {
            return Err(Error::input(
                &shard.path,
                format!("has {} columns but {} has {}", shard.cols, shards[0].path.display(), shards[0].cols),
            ));
        }
    }
    // Every shard's data is in its file, so these products fit in a u64.
    let n: usize = shards.iter().map(|s| s.rows).sum();
    let mut out =
        Array2::from_shape_vec((n, dim), filled(n * dim, 0f32, "the features")?).expect("sized for the shape");
    let mut labels = Vec::new();
    if drop_last_column {
        labels = filled(n, 0f32, "the label column")?;
        labels.clear();
    }
    let mut first_row = 0;
    let mut located = Vec::with_capacity(shards.len());
    for shard in &mut shards {
        let block = out.slice_mut(ndarray::s![first_row..first_row + shard.rows, ..]);
        let dest = block.into_slice().expect("row block of a C-order array is contiguous");
        let rows = Rows { path: shard.path.clone(), first_row, sharded: paths.len() > 1 };
        if shard.header.fortran_order {
            read_fortran(shard, dest, dim, &mut labels, &rows)?;
        } else {
            read_c_order(shard, dest, dim, &mut labels, &rows)?;
        }
        normalize_rows(dest, dim, &rows)?;
        first_row += shard.rows;
        located.push(rows);
    }
    Ok(Pool { features: out, label_column: drop_last_column.then_some(labels), shards: located })
}

fn feature_dim(shard: &Shard, drop_last_column: bool) -> Result<usize> {
    if shard.rows == 0 {
        return Err(Error::input(&shard.path, "has no rows (shape has 0 samples)"));
    }
    let dim = shard.cols.saturating_sub(usize::from(drop_last_column));
    if dim == 0 {
        let why = if drop_last_column { " after dropping the label column" } else { "" };
        return Err(Error::input(&shard.path, format!("has no feature columns{why}")));
    }
    Ok(dim)
}

/// Where a shard's rows sit in the pool, for error messages.
struct Rows {
    path: PathBuf,
    first_row: usize,
    sharded: bool,
}

impl Rows {
    fn error(&self, row: usize, what: String) -> Error {
        let global = if self.sharded { format!(" (sample {} overall)", self.first_row + row) } else { String::new() };
        Error::input(&self.path, format!("row {row}{global} {what}"))
    }
}

/// Decodes `bytes` as values of the shard's dtype, as `f32` with whether
/// the value is finite (in f32).
fn decode(shard: &Shard, bytes: &[u8], out: &mut Vec<(f32, bool)>) {
    out.clear();
    let be = shard.big_endian;
    match shard.dtype {
        Dtype::F32 => out.extend(bytes.chunks_exact(4).map(|b| {
            let b: [u8; 4] = b.try_into().unwrap();
            let v = if be { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) };
            (v, v.is_finite())
        })),
        Dtype::F64 => out.extend(bytes.chunks_exact(8).map(|b| {
            let b: [u8; 8] = b.try_into().unwrap();
            let v = if be { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) };
            // A finite f64 beyond f32's range still cannot be represented.
            ((v as f32), v.is_finite() && (v as f32).is_finite())
        })),
    }
}

fn not_finite(value: f32, col: usize) -> String {
    let what = if value.is_nan() { "NaN".to_string() } else { format!("{value} (not finite in float32)") };
    format!("has a non-finite value in column {col}: {what}")
}

/// Reads rows into `dest`; columns past `dim` (the label) go to `labels`.
fn read_c_order(shard: &mut Shard, dest: &mut [f32], dim: usize, labels: &mut Vec<f32>, rows: &Rows) -> Result<()> {
    let row_bytes = shard.cols * shard.dtype.size();
    let rows_per_chunk = (CHUNK_BYTES / row_bytes).max(1);
    let mut bytes = vec![0u8; rows_per_chunk * row_bytes];
    let mut values = Vec::new();
    for first in (0..shard.rows).step_by(rows_per_chunk) {
        let count = rows_per_chunk.min(shard.rows - first);
        let chunk = &mut bytes[..count * row_bytes];
        shard.reader.read_exact(chunk).map_err(|e| Error::input(&shard.path, io_reason(&e)))?;
        decode(shard, chunk, &mut values);
        for (r, row) in values.chunks_exact(shard.cols).enumerate() {
            let out = &mut dest[(first + r) * dim..(first + r + 1) * dim];
            for (col, (&(v, finite), o)) in row.iter().zip(out.iter_mut()).enumerate() {
                if !finite {
                    return Err(rows.error(first + r, not_finite(v, col)));
                }
                *o = v;
            }
            labels.extend(row[dim..].iter().map(|&(v, _)| v));
        }
    }
    Ok(())
}

fn read_fortran(shard: &mut Shard, dest: &mut [f32], dim: usize, labels: &mut Vec<f32>, rows: &Rows) -> Result<()> {
    let mut bytes = vec![0u8; shard.rows * shard.dtype.size()];
    let mut values = Vec::new();
    for col in 0..shard.cols {
        shard.reader.read_exact(&mut bytes).map_err(|e| Error::input(&shard.path, io_reason(&e)))?;
        decode(shard, &bytes, &mut values);
        if col >= dim {
            labels.extend(values.iter().map(|&(v, _)| v));
            continue;
        }
        for (row, &(v, finite)) in values.iter().enumerate() {
            if !finite {
                return Err(rows.error(row, not_finite(v, col)));
            }
            dest[row * dim + col] = v;
        }
    }
    Ok(())
}

fn normalize_rows(dest: &mut [f32], dim: usize, rows: &Rows) -> Result<()> {
    for (row, values) in dest.chunks_exact_mut(dim).enumerate() {
        let norm = values.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(rows.error(row, "is all zeros and has no direction to normalise".into()));
        }
        for v in values.iter_mut() {
            *v = (f64::from(*v) / norm) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of an `.npy` v1 file with this header dictionary and no data.
    fn npy(dict: &str) -> Vec<u8> {
        let mut header = dict.to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes
    }

    fn header(dict: &str) -> Result<Header> {
        let bytes = npy(dict);
        read_header(Path::new("h.npy"), &mut &bytes[..], bytes.len() as u64)
    }

    #[test]
    fn parses_headers_numpy_writes() {
        let h = header("{'descr': '<f4', 'fortran_order': False, 'shape': (1797, 64), }").unwrap();
        assert_eq!((h.descr.as_str(), h.fortran_order, h.shape, h.data_offset), ("<f4", false, vec![1797, 64], 128));
        assert_eq!(float_dtype(&h.descr), Ok((Dtype::F32, false)));
        let h = header("{'descr': '>f8', 'fortran_order': True, 'shape': (3,), }").unwrap();
        assert_eq!((h.fortran_order, h.shape), (true, vec![3]));
        assert_eq!(float_dtype(&h.descr), Ok((Dtype::F64, true)));
        let h = header("{'descr': '<f8', 'fortran_order': False, 'shape': (), }").unwrap();
        assert!(h.shape.is_empty());
    }

    #[test]
    fn rejects_non_float_dtypes_by_name() {
        for (descr, word) in [("<i8", "integers"), ("<c8", "complex"), ("|O", "objects"), ("<f2", "width")] {
            let err = float_dtype(descr).unwrap_err();
            assert!(err.contains(descr) && err.contains(word), "{err}");
        }
        let err = header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }").unwrap_err();
        assert!(err.to_string().contains("structured"), "{err}");
    }

    #[test]
    fn a_header_longer_than_the_file_is_refused_before_it_is_read() {
        let mut bytes = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }");
        bytes[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        let err = read_header(Path::new("h.npy"), &mut &bytes[..], bytes.len() as u64).unwrap_err();
        assert!(err.to_string().contains("truncated .npy header"), "{err}");
    }
}
