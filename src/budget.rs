//! `--budget` (and anything else sized like it): a count, or a share of the pool.

use std::str::FromStr;

use crate::error::{Error, Result};

/// `--budget`: a count, or a percentage of the pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Count(usize),
    Percent(f64),
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| format!("'{p}' is not a number"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!("a percentage must be in (0, 100], got {p}%"));
            }
            return Ok(Budget::Percent(p));
        }
        match s.parse() {
            // Refused here, before any output is opened: a FIFO's writer
            // would otherwise wait for a reader only to fail.
            Ok(0) => Err("must be at least 1".into()),
            Ok(k) => Ok(Budget::Count(k)),
            Err(_) => Err("expected a whole number (1000) or a percentage (2%)".into()),
        }
    }
}

impl Budget {
    /// The number of samples for a pool of `n`; a percentage is rounded down
    /// exactly as the reference does (`int(n * p * 0.01)`). At least 1 and
    /// at most `n`.
    pub fn resolve(self, n: usize) -> Result<usize> {
        self.resolve_for("--budget", n)
    }

    /// [`Budget::resolve`] for a flag sized like `--budget`.
    pub fn resolve_for(self, flag: &'static str, n: usize) -> Result<usize> {
        let k = match self {
            Budget::Count(k) => k,
            Budget::Percent(p) => (n as f64 * p * 0.01).floor() as usize,
        };
        match self {
            Budget::Percent(p) if k == 0 => Err(Error::usage(flag, format!("{p}% of {n} samples rounds down to 0"))),
            _ if k == 0 => Err(Error::usage(flag, "must be at least 1")),
            _ if k > n => Err(Error::usage(flag, format!("{k} is more than the {n} samples in the pool"))),
            _ => Ok(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_round_like_the_reference() {
        assert_eq!("1000".parse(), Ok(Budget::Count(1000)));
        assert_eq!("2%".parse(), Ok(Budget::Percent(2.0)));
        assert_eq!(Budget::Percent(1.0).resolve(1_281_167).unwrap(), 12_811);
        assert_eq!(Budget::Percent(2.5).resolve(1797).unwrap(), 44);
        // int(100 * 7 * 0.01) == 7 in Python, though 7 * 0.01 * 100 is not exact.
        assert_eq!(Budget::Percent(7.0).resolve(100).unwrap(), 7);
        assert!(Budget::Percent(0.01).resolve(50).is_err());
        assert!(Budget::Count(0).resolve(50).is_err());
        assert!(Budget::Count(51).resolve(50).is_err());
        assert_eq!(Budget::Count(50).resolve(50).unwrap(), 50);
        for bad in ["abc", "0", "0%", "101%", "-3%", "%", "1.5", "-1"] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
    }
}
