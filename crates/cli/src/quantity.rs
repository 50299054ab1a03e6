//! Kubernetes resource quantities (`256Mi`, `1.5Gi`, `500m`, `1e3`).
//!
//! Upstream virtctl parses quantity flags into `resource.Quantity` and prints them back in
//! canonical form, so `--memory 1024Mi` comes out as `1Gi`. [`canonical`] validates a
//! quantity with the same grammar and produces that same canonical text.

/// Upstream's message for a quantity that does not match the grammar.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Upstream's message for a well-formed number with an unknown suffix.
pub const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

/// The three ways a quantity can be written; the canonical form keeps the input's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `Ki`, `Mi`, ... `Ei`.
    BinarySi,
    /// `n`, `u`, `m`, none, `k`, `M`, ... `E`.
    DecimalSi,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// Largest mantissa we accept; keeps all arithmetic inside `i128`.
const MAX_DIGITS: usize = 30;

/// Parses `text` as a quantity and returns its canonical spelling.
///
/// # Errors
/// Upstream's messages: [`FORMAT_ERROR`] or [`SUFFIX_ERROR`].
pub fn canonical(text: &str) -> Result<String, &'static str> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(FORMAT_ERROR);
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > MAX_DIGITS {
        return Err(FORMAT_ERROR);
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| FORMAT_ERROR)?
    };
    let (format, exp10, exp2) = parse_suffix(suffix)?;
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| FORMAT_ERROR)?;
    let exp10 = exp10 - frac_len;
    // value = mantissa * 2^exp2 * 10^exp10, with exp2 >= 0.
    let mantissa = mantissa.checked_mul(1i128 << exp2).ok_or(FORMAT_ERROR)?;
    let body = render(mantissa, exp10, format)?;
    Ok(if negative && mantissa != 0 {
        format!("-{body}")
    } else {
        body
    })
}

/// Returns (format, decimal exponent, binary exponent) for a suffix.
fn parse_suffix(suffix: &str) -> Result<(Format, i32, u32), &'static str> {
    let decimal = |e| Ok((Format::DecimalSi, e, 0));
    let binary = |k: u32| Ok((Format::BinarySi, 0, 10 * k));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ if suffix.starts_with(['e', 'E']) => {
            let exp: i32 = suffix[1..].parse().map_err(|_| SUFFIX_ERROR)?;
            if !(-30..=30).contains(&exp) {
                return Err(FORMAT_ERROR);
            }
            Ok((Format::DecimalExponent, exp, 0))
        }
        _ if suffix
            .chars()
            .all(|c| "eEinumkKMGTP+-0123456789".contains(c)) =>
        {
            Err(SUFFIX_ERROR)
        }
        _ => Err(FORMAT_ERROR),
    }
}

/// Renders `mantissa * 10^exp10` canonically in `format` (mantissa is non-negative).
fn render(mantissa: i128, exp10: i32, format: Format) -> Result<String, &'static str> {
    if mantissa == 0 {
        return Ok("0".to_owned());
    }
    if format == Format::BinarySi {
        if let Some(bytes) = as_integer(mantissa, exp10) {
            if bytes >= 1024 {
                return Ok(render_binary(bytes));
            }
        }
    }
    let (mut mantissa, mut exp) = (mantissa, exp10);
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    if exp < -9 {
        // Quantities carry nano precision at most; finer values round up, as upstream does.
        let divisor = pow10(-9 - exp)?;
        mantissa = (mantissa + divisor - 1) / divisor;
        exp = -9;
    }
    let remainder = exp.rem_euclid(3);
    mantissa = mantissa
        .checked_mul(pow10(remainder)?)
        .ok_or(FORMAT_ERROR)?;
    exp -= remainder;
    if format == Format::DecimalExponent {
        return Ok(if exp == 0 {
            mantissa.to_string()
        } else {
            format!("{mantissa}e{exp}")
        });
    }
    while exp > 18 {
        mantissa = mantissa.checked_mul(1000).ok_or(FORMAT_ERROR)?;
        exp -= 3;
    }
    let suffix = match exp {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => "",
    };
    Ok(format!("{mantissa}{suffix}"))
}

/// `mantissa * 10^exp10` when that is a whole number.
fn as_integer(mantissa: i128, exp10: i32) -> Option<i128> {
    if exp10 >= 0 {
        return mantissa.checked_mul(pow10(exp10).ok()?);
    }
    let divisor = pow10(-exp10).ok()?;
    (mantissa % divisor == 0).then(|| mantissa / divisor)
}

fn render_binary(mut bytes: i128) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut index = 0;
    while index < 6 && bytes % 1024 == 0 {
        bytes /= 1024;
        index += 1;
    }
    format!("{bytes}{}", SUFFIXES[index])
}

fn pow10(exp: i32) -> Result<i128, &'static str> {
    let exp = u32::try_from(exp).map_err(|_| FORMAT_ERROR)?;
    10i128.checked_pow(exp).ok_or(FORMAT_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_upstream() {
        let cases = [
            ("256Mi", "256Mi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("512", "512"),
            ("1000", "1k"),
            ("1500M", "1500M"),
            ("1000M", "1G"),
            ("2147483648", "2147483648"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1e3", "1e3"),
            ("0", "0"),
            ("0Gi", "0"),
            ("+2Gi", "2Gi"),
            ("-1Gi", "-1Gi"),
            ("1.5Ki", "1536"),
            ("50Gi", "50Gi"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical(input).as_deref(), Ok(expected), "input {input}");
        }
    }

    #[test]
    fn malformed_quantities_use_upstream_messages() {
        assert_eq!(canonical("lots"), Err(FORMAT_ERROR));
        assert_eq!(canonical(""), Err(FORMAT_ERROR));
        assert_eq!(canonical("1.2.3"), Err(FORMAT_ERROR));
        assert_eq!(canonical("1Mb"), Err(FORMAT_ERROR));
        assert_eq!(canonical("1KiB"), Err(FORMAT_ERROR));
        assert_eq!(canonical("12Gii"), Err(SUFFIX_ERROR));
    }
}
