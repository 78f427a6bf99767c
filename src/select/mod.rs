//! Selection methods. Each takes unit-norm features and returns sample ids.

pub mod activeft;
