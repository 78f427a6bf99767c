//! `activeft`: choose which samples of an unlabeled pool to annotate, from
//! pretrained feature embeddings, with ActiveFT (Xie et al., CVPR 2023).
//!
//! The binary's entry point is [`run`]; the pieces are public so the
//! benchmarks and tests can drive them directly.

pub mod cli;
pub mod config;
pub mod error;
pub mod io;
pub mod linalg;
pub mod progress;
mod run;
pub mod select;

pub use cli::run;
pub mod eval;
