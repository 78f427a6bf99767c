//! Lists of sample ids given on the command line (`--init-indices`,
//! `eval --selection`).

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads a JSON list of sample ids.
pub fn read_index_list(path: &Path) -> Result<Vec<usize>> {
    let text = fs::read_to_string(path).map_err(|e| Error::input(path, reason(&e)))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::input(path, format!("is not valid JSON: {e}")))?;
    let items = value.as_array().ok_or_else(|| Error::input(path, "must hold a JSON list of sample ids"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .map(|id| id as usize)
                .ok_or_else(|| Error::input(path, format!("entry {i} is {v}, not a non-negative integer sample id")))
        })
        .collect()
}

/// The selection as the reference's finetuning code reads it: one compact
/// JSON list of ascending sample ids and a newline.
pub fn selection_json(selected: &[usize]) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(selected).expect("a list of integers serialises");
    bytes.push(b'\n');
    bytes
}

fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::InvalidData => "is not UTF-8 text".into(),
        _ => format!("cannot read: {e}"),
    }
}
