//! `activeft`: choose which samples of an unlabeled pool to annotate, from
//! pretrained feature embeddings, with ActiveFT (Xie et al., CVPR 2023) and
//! the baselines it is compared with.
//!
//! The layers import one way, top down: [`main`] → `cli` (clap) → `config`
//! (plain settings) → `run` → `methods`, `eval` and `io` → `nearest` (the
//! exact nearest-point engine) → `linalg`, `chunks`, `error`.

#![deny(clippy::undocumented_unsafe_blocks)]

mod budget;
mod chunks;
mod cli;
mod config;
mod error;
mod eval;
mod io;
mod linalg;
mod methods;
mod nearest;
mod progress;
mod run;
mod synth;
#[cfg(test)]
mod testing;

/// Runs the command line; returns the process exit code: 0 on success,
/// 2 for bad input or usage, 1 when the tool itself fails.
pub fn main() -> i32 {
    // Ctrl-C or a kill leaves no temporary output file behind.
    let _ = ctrlc::set_handler(|| {
        io::output::remove_temporaries();
        std::process::exit(130);
    });
    match cli::parse() {
        cli::Parsed::Exit(code) => code,
        cli::Parsed::Run(settings) => match run::run(&settings) {
            Ok(()) => 0,
            Err(e) => e.report(),
        },
    }
}

/// What the benchmarks, examples and integration tests drive directly. Not
/// a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::eval::evaluate;
    pub use crate::io::features::load_features;
    pub use crate::io::npy::load_labels;
    pub use crate::methods::activeft::{self, ActiveFtParams};
    pub use crate::methods::{Method, Round, run};
    pub use crate::nearest::{Batch, Engine, Mode, dense};
    pub mod synth {
        pub use crate::synth::*;
    }
}
