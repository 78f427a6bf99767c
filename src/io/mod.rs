//! Input and output: `.npy` features in, JSON selections and reports out.
//!
//! - `npy`: the streaming feature reader and the label reader;
//! - `ids`: lists of sample ids in and out;
//! - `output`: files written whole or not at all;
//! - `report`: the `--report` structure.

pub mod ids;
pub mod npy;
pub mod output;
pub mod report;
