//! Integer probabilities for fault draws.
//!
//! Fault decisions must replay bit-for-bit from a seed on every platform, so they
//! are drawn as "an integer below `den` is below `num`", never with floats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A probability `num/den`, with `den > 0` and `num <= den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRatio")]
pub struct Ratio {
    pub num: u32,
    pub den: u32,
}

/// Why a ratio was rejected (from a config file or the command line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RatioError {
    #[error("ratio denominator must be positive")]
    ZeroDenominator,
    #[error("ratio {num}/{den} is above 1")]
    AboveOne { num: u32, den: u32 },
    #[error("expected a ratio like \"1/100\", got {0:?}")]
    Syntax(String),
}

impl Ratio {
    pub const NEVER: Ratio = Ratio { num: 0, den: 1 };
    pub const ALWAYS: Ratio = Ratio { num: 1, den: 1 };

    /// # Panics
    /// If `den == 0` or `num > den`: a misconfigured fault rate is a bug in the scenario.
    pub const fn new(num: u32, den: u32) -> Self {
        assert!(den > 0, "ratio denominator must be positive");
        assert!(num <= den, "ratio above 1");
        Ratio { num, den }
    }

    pub const fn checked(num: u32, den: u32) -> Result<Self, RatioError> {
        if den == 0 {
            Err(RatioError::ZeroDenominator)
        } else if num > den {
            Err(RatioError::AboveOne { num, den })
        } else {
            Ok(Ratio { num, den })
        }
    }

    pub const fn is_never(&self) -> bool {
        self.num == 0
    }

    /// True with probability `num/den`.
    ///
    /// The certain cases (0 and 1) consume no randomness, so a fault that is switched
    /// off does not shift the random stream of the rest of the run. Never panics, even
    /// on a ratio built by hand with `den == 0` (treated as NEVER/ALWAYS by `num`).
    pub fn draw(&self, rng: &mut impl rand::Rng) -> bool {
        if self.num == 0 {
            return false;
        }
        if self.num >= self.den {
            return true;
        }
        rng.gen_range(0..self.den) < self.num
    }
}

impl Default for Ratio {
    /// Faults are off unless asked for.
    fn default() -> Self {
        Ratio::NEVER
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl FromStr for Ratio {
    type Err = RatioError;

    /// Parses "num/den" (as printed by Display); a bare "0" or "1" is also accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || RatioError::Syntax(s.to_owned());
        let s = s.trim();
        let (num, den) = s.split_once('/').unwrap_or((s, "1"));
        let num = num.trim().parse().map_err(|_| syntax())?;
        let den = den.trim().parse().map_err(|_| syntax())?;
        Ratio::checked(num, den)
    }
}

/// Deserialization goes through `checked`, so a config file cannot smuggle in 3/2.
#[derive(Deserialize)]
struct RawRatio {
    num: u32,
    den: u32,
}

impl TryFrom<RawRatio> for Ratio {
    type Error = RatioError;

    fn try_from(raw: RawRatio) -> Result<Self, Self::Error> {
        Ratio::checked(raw.num, raw.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn count_hits(ratio: Ratio, seed: u64, trials: u32) -> u32 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..trials).filter(|_| ratio.draw(&mut rng)).count() as u32
    }

    #[test]
    fn never_and_always_are_certain() {
        assert_eq!(count_hits(Ratio::NEVER, 1, 1000), 0);
        assert_eq!(count_hits(Ratio::ALWAYS, 1, 1000), 1000);
        assert_eq!(count_hits(Ratio::new(0, 7), 1, 1000), 0);
        assert_eq!(count_hits(Ratio::new(7, 7), 1, 1000), 1000);
    }

    #[test]
    fn certain_draws_consume_no_randomness() {
        let mut a = ChaCha8Rng::seed_from_u64(9);
        let mut b = ChaCha8Rng::seed_from_u64(9);
        assert!(!Ratio::NEVER.draw(&mut a));
        assert!(Ratio::ALWAYS.draw(&mut a));
        assert_eq!(rand::Rng::gen::<u64>(&mut a), rand::Rng::gen::<u64>(&mut b));
    }

    #[test]
    fn frequency_is_roughly_right() {
        let hits = count_hits(Ratio::new(1, 4), 42, 40_000);
        assert!((9_000..11_000).contains(&hits), "hits = {hits}");
    }

    #[test]
    fn same_seed_same_draws() {
        let r = Ratio::new(1, 3);
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..64).map(|_| r.draw(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn hand_built_zero_denominator_does_not_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(!Ratio { num: 0, den: 0 }.draw(&mut rng));
        assert!(Ratio { num: 1, den: 0 }.draw(&mut rng));
    }

    #[test]
    #[should_panic]
    fn new_rejects_zero_denominator() {
        let _ = Ratio::new(0, 0);
    }

    #[test]
    #[should_panic]
    fn new_rejects_above_one() {
        let _ = Ratio::new(3, 2);
    }

    #[test]
    fn display_and_parse_roundtrip() {
        let r = Ratio::new(3, 1000);
        assert_eq!(r.to_string(), "3/1000");
        assert_eq!("3/1000".parse::<Ratio>(), Ok(r));
        assert_eq!(" 1 / 2 ".parse::<Ratio>(), Ok(Ratio::new(1, 2)));
        assert_eq!("0".parse::<Ratio>(), Ok(Ratio::NEVER));
        assert_eq!("1".parse::<Ratio>(), Ok(Ratio::ALWAYS));
        assert_eq!("1/0".parse::<Ratio>(), Err(RatioError::ZeroDenominator));
        assert!(matches!("2/1".parse::<Ratio>(), Err(RatioError::AboveOne { .. })));
        assert!(matches!("half".parse::<Ratio>(), Err(RatioError::Syntax(_))));
    }

    #[test]
    fn default_is_never() {
        assert_eq!(Ratio::default(), Ratio::NEVER);
    }

    #[test]
    fn serde_validates() {
        let r: Ratio = serde_json::from_str(r#"{"num":1,"den":8}"#).unwrap();
        assert_eq!(r, Ratio::new(1, 8));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"num":1,"den":8}"#);
        assert!(serde_json::from_str::<Ratio>(r#"{"num":3,"den":2}"#).is_err());
        assert!(serde_json::from_str::<Ratio>(r#"{"num":0,"den":0}"#).is_err());
    }
}
