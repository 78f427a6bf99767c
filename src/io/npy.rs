//! The `.npy` format: headers (parsed by `ndarray-npy`), dtypes, and
//! integer label files. Feature arrays are read by `features`.

use std::io::Read;
use std::path::Path;

use ndarray_npy::npy::header::Header as NpyHeader;

use crate::error::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Element type of a supported feature array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F16,
    F32,
    F64,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
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

/// Reads and checks the header of one file of at most `file_len` bytes;
/// the reader is left at the data. The dictionary is parsed by
/// `ndarray-npy`; its length is checked against the file first, so a
/// damaged length field cannot ask for more memory than the file holds.
pub fn read_header(path: &Path, reader: &mut dyn Read, file_len: u64) -> Result<Header> {
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
        return Err(bad(format!(
            "truncated .npy header: it claims {header_len} bytes, the file holds at most {file_len}"
        )));
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

/// The float type of a feature file and whether it is big-endian, or why
/// it is not one.
pub fn float_dtype(descr: &str) -> std::result::Result<(Dtype, bool), String> {
    let (big_endian, kind) = split_descr(descr);
    match kind {
        "f2" => Ok((Dtype::F16, big_endian)),
        "f4" => Ok((Dtype::F32, big_endian)),
        "f8" => Ok((Dtype::F64, big_endian)),
        _ => Err(format!(
            "unsupported dtype '{descr}' ({}); activeft reads float16, float32 or float64, \
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

/// Reads integer class labels: a 1-D array (or one column) of any integer
/// dtype, from standard input for `-`.
pub fn load_labels(path: &Path) -> Result<Vec<i64>> {
    if path.is_dir() {
        return Err(Error::input(path, "is a directory, not an .npy file"));
    }
    let bytes = super::source::read_whole(path).map_err(|e| Error::input(path, super::source::reason(&e)))?;
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

/// A parser's message (which may quote the header over several lines) as
/// one printable line.
fn one_line(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no details");
    first.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>().trim_end_matches(':').into()
}

pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
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
        for (descr, word) in [("<i8", "integers"), ("<c8", "complex"), ("|O", "objects"), ("<f16", "width")] {
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
