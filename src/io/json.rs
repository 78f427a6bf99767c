//! Writing results: a selection to stdout or a file, reports as JSON files.
//!
//! Files are written atomically: the bytes go to a hidden temporary file in the
//! destination's directory, which is renamed over the destination only once
//! complete. A run that fails or is interrupted never leaves a partial file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A destination file reserved at start-up, so an unwritable path fails
/// before any work is done rather than after it.
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<AtomicFile> {
        let name = target.file_name().ok_or_else(|| Error::input(target, "is not a file path"))?.to_string_lossy();
        if target.is_dir() {
            return Err(Error::input(target, "is a directory"));
        }
        let temp = target.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let file =
            File::create(&temp).map_err(|e| Error::input(target, format!("cannot be written: {}", reason(&e))))?;
        Ok(AtomicFile { target: target.to_path_buf(), temp, file: Some(file) })
    }

    /// Writes `bytes` and moves the file into place.
    pub fn commit(mut self, bytes: &[u8]) -> Result<()> {
        let mut file = self.file.take().expect("an AtomicFile is committed once");
        let written = file.write_all(bytes).and_then(|_| file.sync_all());
        drop(file);
        written
            .and_then(|_| fs::rename(&self.temp, &self.target))
            .map_err(|e| Error::input(&self.target, format!("cannot be written: {}", reason(&e))))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Committed files have been renamed away; anything left is partial.
        let _ = fs::remove_file(&self.temp);
    }
}

fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "its directory does not exist".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Where the selection goes.
pub enum Sink {
    Stdout,
    File(AtomicFile),
}

impl Sink {
    pub fn open(path: Option<&Path>) -> Result<Sink> {
        match path {
            None => Ok(Sink::Stdout),
            Some(p) => AtomicFile::create(p).map(Sink::File),
        }
    }

    /// Writes the bytes. A closed stdout (`activeft ... | head`) is not an
    /// error worth a message; the caller learns of it through `Ok(false)`.
    pub fn write(self, bytes: &[u8]) -> Result<bool> {
        match self {
            Sink::File(f) => f.commit(bytes).map(|_| true),
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                match out.write_all(bytes).and_then(|_| out.flush()) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
                    Err(e) => Err(Error::Internal(format!("cannot write to stdout: {e}"))),
                }
            }
        }
    }
}

/// The selection as the reference's finetuning code reads it: one compact
/// JSON list of ascending sample ids and a newline.
pub fn selection_json(selected: &[usize]) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(selected).expect("a list of integers serialises");
    bytes.push(b'\n');
    bytes
}

/// Reads a JSON list of sample ids, e.g. `--init-indices`.
pub fn read_index_list(path: &Path) -> Result<Vec<usize>> {
    let text = fs::read_to_string(path).map_err(|e| Error::input(path, reason_read(&e)))?;
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

fn reason_read(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::InvalidData => "is not UTF-8 text".into(),
        _ => format!("cannot read: {e}"),
    }
}
