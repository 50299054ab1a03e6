//! Kubernetes resource quantities (`128Mi`, `1.5Gi`, `500m`, `2e3`), exact to the nano unit.

use std::cmp::Ordering;
use std::fmt;

/// Why a quantity string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text does not follow the quantity grammar (Kubernetes' `ErrFormatWrong` wording).
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    /// The value does not fit in 128 bits of nano units (far beyond any real resource).
    #[error("quantity {0:?} is too large")]
    TooLarge(String),
}

/// Shorthand for this module's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

const NANOS: i128 = 1_000_000_000;

/// A parsed quantity. Keeps the text it was parsed from, which is what messages quote.
#[derive(Debug, Clone)]
pub struct Quantity {
    nanos: i128,
    text: String,
}

fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

/// Divides rounding away from zero, as Kubernetes' `Value()` and `MilliValue()` do.
fn div_away(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

impl Quantity {
    /// Parses a quantity string.
    ///
    /// # Errors
    /// [`Error::Format`] for text outside the grammar, [`Error::TooLarge`] past 10^29 units.
    pub fn parse(text: &str) -> Result<Self> {
        let too_large = || Error::TooLarge(text.to_string());
        let s = text.trim();
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_len);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(Error::Format);
        }
        let (exp10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            _ => {
                let exp = suffix.strip_prefix(['e', 'E']).ok_or(Error::Format)?;
                let digits = exp.trim_start_matches(['+', '-']);
                if digits.is_empty()
                    || !digits.bytes().all(|c| c.is_ascii_digit())
                    || exp.len() - digits.len() > 1
                {
                    return Err(Error::Format);
                }
                (exp.parse::<i32>().map_err(|_| too_large())?, 0)
            }
        };
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(too_large());
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| Error::Format)?
        };
        let scale = 9 + exp10 - i32::try_from(frac_part.len()).map_err(|_| too_large())?;
        let mut nanos = if scale >= 0 {
            mantissa
                .checked_mul(pow10(scale.unsigned_abs()).ok_or_else(too_large)?)
                .ok_or_else(too_large)?
        } else {
            // Below one nano unit: round up, as Kubernetes does when it canonicalizes.
            match pow10(scale.unsigned_abs()) {
                Some(d) => div_away(mantissa, d),
                None => i128::from(mantissa != 0),
            }
        };
        nanos = nanos.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            text: text.to_string(),
        })
    }

    /// The value in whole units, rounded away from zero (Kubernetes' `Value()`).
    pub fn value(&self) -> i128 {
        div_away(self.nanos, NANOS)
    }

    /// The value in thousandths, rounded away from zero (Kubernetes' `MilliValue()`).
    pub fn milli_value(&self) -> i128 {
        div_away(self.nanos, 1_000_000)
    }

    /// Whether the quantity is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Whether the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The text the quantity was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Formats a byte count as Kubernetes' canonical binary-SI quantity (`8Gi`, `1536Mi`, `1000`).
pub(crate) fn format_binary(value: i128) -> String {
    const SUFFIXES: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    for (suffix, shift) in SUFFIXES {
        let unit = 1i128 << shift;
        if value != 0 && value % unit == 0 {
            return format!("{}{suffix}", value / unit);
        }
    }
    value.to_string()
}

/// Reads a quantity from JSON, which may hold it as a string or (for plain numbers) a number.
pub(crate) fn from_json(v: &serde_json::Value) -> Option<Result<Quantity>> {
    match v {
        serde_json::Value::String(s) => Some(Quantity::parse(s)),
        serde_json::Value::Number(n) => Some(Quantity::parse(&n.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect("valid quantity")
    }

    #[test]
    fn binary_and_decimal_suffixes_scale_as_kubernetes() {
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("64M").value(), 64_000_000);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
    }

    #[test]
    fn millis_round_up_to_whole_units() {
        assert_eq!(q("500m").value(), 1);
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("-500m").value(), -1);
    }

    #[test]
    fn comparison_is_by_value_not_text() {
        assert_eq!(q("1024Mi"), q("1Gi"));
        assert!(q("64M") > q("32Mi"));
        assert!(q("0").is_zero());
    }

    #[test]
    fn binary_formatting_picks_the_largest_exact_suffix() {
        assert_eq!(format_binary(8 << 30), "8Gi");
        assert_eq!(format_binary(1536 << 20), "1536Mi");
        assert_eq!(format_binary(1000), "1000");
        assert_eq!(format_binary(0), "0");
    }

    #[test]
    fn malformed_text_is_rejected_with_kubernetes_wording() {
        for bad in ["", "Mi", "1.2.3", "12Q", "1e", "1e+-2", "abc"] {
            assert_eq!(Quantity::parse(bad), Err(Error::Format), "{bad}");
        }
        assert!(Error::Format
            .to_string()
            .starts_with("quantities must match the regular expression"));
        assert!(matches!(Quantity::parse("1e40"), Err(Error::TooLarge(_))));
    }
}
