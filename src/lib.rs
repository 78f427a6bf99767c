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
mod comm;
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
        cli::Parsed::Run(settings) => run_as_ranks(&settings),
    }
}

/// Runs the settings in this process alone (the plain build).
#[cfg(not(feature = "mpi"))]
fn run_as_ranks(settings: &config::Settings) -> i32 {
    finish(run::run(settings, &comm::Comm::single()), &comm::Comm::single())
}

/// Runs the settings as one rank of the MPI world `mpirun` started (a
/// world of one without it). MPI is called from one thread at a time.
#[cfg(feature = "mpi")]
fn run_as_ranks(settings: &config::Settings) -> i32 {
    let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Serialized) else {
        eprintln!("activeft: MPI could not be initialised");
        return 1;
    };
    let comm = comm::Comm::world(&universe);
    finish(run::run(settings, &comm), &comm)
}

/// The exit code of a run; errors print one line (naming the rank when
/// there are several).
fn finish(result: error::Result<()>, comm: &comm::Comm) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) if comm.size() > 1 => {
            // One write, so the ranks' lines, merged by mpirun, stay whole.
            let line = format!("activeft: rank {} of {}: {e}\n", comm.rank(), comm.size());
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            e.exit_code()
        }
        Err(e) => e.report(),
    }
}

/// What the benchmarks, examples and integration tests drive directly. Not
/// a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::eval::evaluate;
    pub use crate::io::features::load_features;
    pub use crate::io::npy::load_labels;
    pub use crate::linalg::codes12::take_everywhere as take_codes12_everywhere;
    pub use crate::linalg::{Packed, kernel_name};
    pub use crate::methods::activeft::{self, ActiveFtParams};
    pub use crate::methods::{Method, Round, run};
    pub use crate::nearest::{Batch, Engine, Mode, dense};
    pub mod synth {
        pub use crate::synth::*;
    }
}
