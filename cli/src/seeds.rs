//! Parsing of seeds and seed ranges; bad input is a usage error with a one-line message.

use std::ops::Range;

pub fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| format!("invalid seed `{s}`: expected a non-negative integer"))
}

pub fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("invalid seed range `{s}`: expected A..B"))?;
    let bad = |_| format!("invalid seed range `{s}`: expected A..B with integers A < B");
    let (a, b) = (a.trim().parse::<u64>().map_err(bad)?, b.trim().parse::<u64>().map_err(bad)?);
    if a >= b {
        return Err(format!("invalid seed range `{s}`: empty, A must be below B"));
    }
    Ok(a..b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bad_ones_say_why() {
        assert_eq!(parse_range("0..200").unwrap(), 0..200);
        assert!(parse_range("5..x").unwrap_err().contains("5..x"));
        assert!(parse_range("5").is_err());
        assert!(parse_range("7..7").is_err());
        assert!(parse_seed("-1").is_err());
        assert_eq!(parse_seed("42").unwrap(), 42);
    }
}
