//! Kubernetes resource quantities (`128Mi`, `1G`, `1.5Gi`, `500m`, `2`), as used for
//! memory sizes, disk capacities and CPU counts.

use serde_json::Value;

use crate::error::{Error, Result};

/// The value of `quantity` in base units (bytes, or cores), rounded up.
///
/// # Errors
/// [`Error::Quantity`] naming `field` if the text is not a quantity.
pub fn parse(field: &str, quantity: &str) -> Result<u64> {
    let bad = || Error::Quantity {
        field: field.to_owned(),
        value: quantity.to_owned(),
    };
    let text = quantity.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    // (numerator, denominator) of the suffix's multiplier.
    let (mul, div): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        _ => return Err(bad()),
    };
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| bad())?
    };
    let scale = 10u128
        .checked_pow(u32::try_from(fraction.len()).map_err(|_| bad())?)
        .ok_or_else(bad)?;
    let numerator = mantissa.checked_mul(mul).ok_or_else(bad)?;
    let denominator = scale * div;
    let value = numerator.div_ceil(denominator);
    u64::try_from(value).map_err(|_| bad())
}

/// Like [`parse`] for a JSON value that may be a string or a number.
///
/// # Errors
/// As for [`parse`].
pub fn parse_value(field: &str, value: &Value) -> Result<u64> {
    match value {
        Value::String(text) => parse(field, text),
        Value::Number(number) => parse(field, &number.to_string()),
        other => Err(Error::Quantity {
            field: field.to_owned(),
            value: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes_give_bytes() {
        assert_eq!(parse("m", "128Mi").expect("ok"), 128 << 20);
        assert_eq!(parse("m", "1Gi").expect("ok"), 1 << 30);
        assert_eq!(parse("m", "1G").expect("ok"), 1_000_000_000);
        assert_eq!(parse("m", "1.5Gi").expect("ok"), 3 << 29);
        assert_eq!(parse("m", "4096").expect("ok"), 4096);
    }

    #[test]
    fn milli_cpus_round_up_to_whole_cores() {
        assert_eq!(parse("cpu", "500m").expect("ok"), 1);
        assert_eq!(parse("cpu", "2").expect("ok"), 2);
        assert_eq!(parse("cpu", "2500m").expect("ok"), 3);
    }

    #[test]
    fn garbage_is_an_error_naming_the_field() {
        let error = parse("spec.domain.memory.guest", "lots").expect_err("bad");
        assert!(error.to_string().contains("spec.domain.memory.guest"));
        assert!(parse("x", "1Xi").is_err());
        assert!(parse("x", "").is_err());
    }
}
