//! The errors a run can end with, and the exit code each one maps to.

use std::path::{Path, PathBuf};

/// Everything that can stop a run. Each variant renders as one line that
/// names the file or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file given on the command line is missing, unreadable or malformed.
    #[error("{}: {msg}", path.display())]
    Input { path: PathBuf, msg: String },
    /// A flag's value is unusable (alone or in combination with the data).
    #[error("{flag}: {msg}")]
    Usage { flag: &'static str, msg: String },
    /// The pool (or what a method keeps per sample) does not fit in memory.
    #[error("{what} need {} of memory, more than this process can allocate", size(*.bytes))]
    Memory { what: &'static str, bytes: u128 },
    /// Writing a result failed (a full disk, a closed device).
    #[error("{}: {msg}", path.display())]
    Output { path: PathBuf, msg: String },
    /// Metrics outside the bounds `eval --min/--max` set, one line each.
    #[error("{}", .0.join("\nactiveft: "))]
    Limits(Vec<String>),
    /// The optimisation itself went wrong; a bug or a numerical blow-up.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn input(path: &Path, msg: impl Into<String>) -> Self {
        Error::Input { path: path.to_path_buf(), msg: msg.into() }
    }

    pub fn usage(flag: &'static str, msg: impl Into<String>) -> Self {
        Error::Usage { flag, msg: msg.into() }
    }

    /// Prints the one-line message on stderr; returns the exit code.
    pub fn report(&self) -> i32 {
        eprintln!("activeft: {self}");
        self.exit_code()
    }

    /// 2 for anything the user can fix by changing the input or flags,
    /// 3 for metrics out of their bounds, 1 for everything else: too little
    /// memory, a failed write, a bug.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input { .. } | Error::Usage { .. } => 2,
            Error::Memory { .. } | Error::Output { .. } | Error::Internal(_) => 1,
            Error::Limits(_) => 3,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A vector of `len` copies of `value`, or [`Error::Memory`] naming `what`
/// needs the room: large buffers are reserved fallibly, so a pool too big
/// for the machine ends in one line instead of an abort.
pub fn filled<T: Clone>(len: usize, value: T, what: &'static str) -> Result<Vec<T>> {
    let mut v = reserved(len, what)?;
    v.resize(len, value);
    Ok(v)
}

/// An empty vector with room for `len` values, reserved as in [`filled`].
pub fn reserved<T>(len: usize, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::Memory { what, bytes: len as u128 * std::mem::size_of::<T>() as u128 })?;
    Ok(v)
}

/// Bytes in the unit a person reads: `1.97 GB`, `512 MB`.
fn size(bytes: u128) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GB ({b} bytes)", b as f64 / 1e9),
        b if b >= 1 << 20 => format!("{:.0} MB ({b} bytes)", b as f64 / 1e6),
        b => format!("{b} bytes"),
    }
}
