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

    /// 2 for anything the user can fix by changing the input or flags,
    /// 1 for failures of the tool itself.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input { .. } | Error::Usage { .. } => 2,
            Error::Internal(_) => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
