//! Input and output: `.npy` features in, JSON selections and reports out.

pub mod json;
pub mod npy;
pub mod report;
