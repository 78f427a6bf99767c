//! Input and output: `.npy` features in, JSON selections and reports out.
//!
//! - `source`: files, standard input and `.npz` members, hashed as read;
//! - `features`: the streaming reader of feature arrays into the pool;
//! - `npy`: the format's headers and dtypes, and label files;
//! - `ids`: lists of sample ids in and out;
//! - `output`: files written whole or not at all;
//! - `report`: the `--report` structure.

pub mod features;
pub mod ids;
pub mod npy;
pub mod output;
pub mod report;
pub mod source;
