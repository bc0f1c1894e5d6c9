//! Byte sizes as people write them (`64m`, `1.5G`, `512 K`, `10kb`,
//! `4096`): the one parser behind `--memory` and `--log-opt max-size` on
//! the command line and the dm-thin pool's `STRATA_DMTHIN_*_SIZE`
//! settings, so a size means the same thing wherever strata reads one.
//!
//! Units are binary (k = 1024), in any case, with an optional `b` after
//! them, as Docker reads `--memory`. Pure: no I/O, no dependency on the
//! rest of the crate.

/// A string that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size: {input:?}")]
pub struct SizeError {
    pub input: String,
}

/// Parses a byte size: a number (`1536`, `1.5`), optional spaces, an
/// optional unit `k`, `m`, `g` or `t` (powers of 1024, any case), and an
/// optional trailing `b`; surrounding whitespace is ignored. A fraction is
/// rounded to the nearest byte. Signs, exponents, a size above `u64::MAX`
/// and anything else are errors.
pub fn parse_bytes(s: &str) -> Result<u64, SizeError> {
    let bad = || SizeError { input: s.to_owned() };
    let t = s.trim();
    let t = t.strip_suffix(['b', 'B']).unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        Some((i, 't' | 'T')) => (&t[..i], 40),
        _ => (t, 0),
    };
    let num = num.trim_end();
    let (whole, fraction) = num.split_once('.').unwrap_or((num, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let mut bytes = whole.checked_mul(1 << shift).ok_or_else(bad)?;
    if !fraction.is_empty() {
        // The fraction of one unit, in bytes: exact enough, since it is
        // below 2^40 and f64 holds 52 bits.
        let f: f64 = format!("0.{fraction}").parse().map_err(|_| bad())?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let part = (f * (1u64 << shift) as f64).round() as u64;
        bytes = bytes.checked_add(part).ok_or_else(bad)?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_refuse_anything_else() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes(" 64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("64 K"), Ok(64 << 10));
        assert_eq!(parse_bytes("1536m"), Ok(1536 << 20));
        assert_eq!(parse_bytes("100G"), Ok(100 << 30));
        for bad in ["", "G", "10X", "-1G", "99999999999999999999G", "b", "k b", "1e3", "+5", "inf", "nan", "1..5"] {
            assert_eq!(parse_bytes(bad), Err(SizeError { input: bad.to_owned() }), "{bad:?}");
        }
    }

    #[test]
    fn docker_style_sizes_parse() {
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("2k"), Ok(2048));
        assert_eq!(parse_bytes("64MB"), Ok(64 << 20));
        assert_eq!(parse_bytes("10kb"), Ok(10 << 10));
        assert_eq!(parse_bytes("100b"), Ok(100));
        assert_eq!(parse_bytes("2t"), Ok(2 << 40));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("0.5k"), Ok(512));
        assert_eq!(parse_bytes(".5k"), Ok(512));
        assert_eq!(parse_bytes("1.5"), Ok(2), "a fraction of a byte rounds");
        assert_eq!(parse_bytes("15.99999999999999999999T"), Ok(16 << 40));
    }

    #[test]
    fn the_error_names_the_input() {
        assert_eq!(parse_bytes("lots").unwrap_err().to_string(), "invalid size: \"lots\"");
    }
}
