//! Writing results without ever leaving a partial file, and without
//! destroying what a path points at.
//!
//! An output is opened (reserved) before any work, so an unwritable path
//! fails at once, and written whole at the end:
//! - a regular file, or a path that does not exist yet, is written to a
//!   hidden temporary file beside it and renamed over it when complete (a
//!   symbolic link is followed, so the link itself survives);
//! - anything else that exists (a device such as `/dev/null`, a FIFO, a
//!   process substitution, a terminal) is written in place, since renaming
//!   over it would replace the device or pipe with a regular file;
//! - no path means standard output.
//!
//! Every write and the final flush are checked: a full disk is an error
//! (exit 1), a reader that went away (`| head`) is not. Temporary files are
//! removed when their output is dropped, and by [`remove_temporaries`] when a
//! signal ends the process.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Temporary files that exist right now, for the signal handler.
static TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Makes temporary names unique within the process.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Removes every temporary file still open; for a signal handler that is
/// about to end the process.
pub fn remove_temporaries() {
    let list = TEMPORARIES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for path in list.iter() {
        let _ = fs::remove_file(path);
    }
}

/// An output reserved at start-up.
pub struct Output {
    /// The path as given, for messages.
    shown: PathBuf,
    kind: Kind,
}

enum Kind {
    Stdout,
    /// Written to `temp`, then renamed to `target`.
    Replace {
        target: PathBuf,
        temp: PathBuf,
        file: Option<File>,
    },
    /// Written in place.
    Direct(File),
}

impl Output {
    /// Reserves `path` (standard output for None).
    pub fn create(path: Option<&Path>) -> Result<Output> {
        let Some(path) = path else {
            return Ok(Output { shown: "stdout".into(), kind: Kind::Stdout });
        };
        let cannot = |e: io::Error| Error::input(path, format!("cannot be written: {}", reason(&e)));
        let kind = match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Err(Error::input(path, "is a directory")),
            Ok(meta) if meta.is_file() => replace(&fs::canonicalize(path).map_err(cannot)?).map_err(cannot)?,
            Ok(_) => Kind::Direct(OpenOptions::new().write(true).open(path).map_err(cannot)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if path.file_name().is_none() {
                    return Err(Error::input(path, "is not a file path"));
                }
                replace(path).map_err(cannot)?
            }
            Err(e) => return Err(cannot(e)),
        };
        Ok(Output { shown: path.to_path_buf(), kind })
    }

    /// Writes `bytes` and puts them in place. A reader that closed its end
    /// early is not an error; a failed write (a full disk) is.
    pub fn commit(mut self, bytes: &[u8]) -> Result<()> {
        let failed = |e: io::Error| Error::Output { path: self.shown.clone(), msg: format!("cannot be written: {e}") };
        let written = match &mut self.kind {
            Kind::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes).and_then(|_| out.flush())
            }
            Kind::Direct(file) => file.write_all(bytes).and_then(|_| file.flush()),
            Kind::Replace { target, temp, file } => {
                let mut file = file.take().expect("an output is committed once");
                file.write_all(bytes).and_then(|_| file.sync_all()).and_then(|_| fs::rename(&*temp, &*target))
            }
        };
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other.map_err(failed),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Kind::Replace { temp, .. } = &self.kind {
            // Committed files were renamed away; anything left is partial.
            let _ = fs::remove_file(temp);
            let mut list = TEMPORARIES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            list.retain(|p| p != temp);
        }
    }
}

/// A fresh temporary file beside `target`, registered for clean-up.
fn replace(target: &Path) -> io::Result<Kind> {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let unique = NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed);
    let temp = target.with_file_name(format!(".{name}.{}.{unique}.tmp", std::process::id()));
    let mut list = TEMPORARIES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
    list.push(temp.clone());
    Ok(Kind::Replace { target: target.to_path_buf(), temp, file: Some(file) })
}

fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "its directory does not exist".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Refuses, before any work, an output that is the same file as another
/// output or as an input: writing it would destroy what the run reads, or
/// one result would overwrite the other. `outputs` and `inputs` pair each
/// path with the flag that named it. Devices such as `/dev/null` may repeat.
pub fn check_distinct(outputs: &[(&'static str, &Path)], inputs: &[(&'static str, &Path)]) -> Result<()> {
    for (i, &(flag, out)) in outputs.iter().enumerate() {
        let earlier = outputs[..i].iter().chain(inputs);
        if let Some((other, _)) = earlier.clone().find(|(_, other)| same_file(out, other)) {
            return Err(Error::usage(flag, format!("{} is also given to {other}", out.display())));
        }
    }
    Ok(())
}

/// Whether two paths name the same regular file, or would once created.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()) && !is_device(x.file_type()),
        (Err(_), Err(_)) => canonical_new(a).is_some() && canonical_new(a) == canonical_new(b),
        _ => false,
    }
}

/// A path that does not exist yet, with its directory resolved.
fn canonical_new(path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(parent).ok()?.join(path.file_name()?))
}

/// Device files, which many outputs may share harmlessly.
fn is_device(file_type: fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file_type.is_char_device() || file_type.is_block_device()
}
