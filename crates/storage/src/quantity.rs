//! Kubernetes resource quantities (`10Gi`, `500M`, `1.5Gi`, `1e9`) as byte counts.

/// Parses a quantity into bytes (rounded up), or `None` when it is not one.
pub fn parse(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let bytes = (value * multiplier).ceil();
    // f64 → u64 saturates; quantities past 2^64 bytes are not volumes anyone has.
    Some(bytes as u64)
}

/// Formats bytes the way Kubernetes canonicalises binary quantities (`1Gi`, `1536Mi`, or a
/// plain number of bytes when no binary suffix divides it).
pub fn format(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = ["Ei", "Pi", "Ti", "Gi", "Mi", "Ki"];
    for (i, suffix) in SUFFIXES.iter().enumerate() {
        let unit = 1u64 << (10 * (6 - i));
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// Rounds `bytes` up to a whole MiB (volumes and images are sized in MiB steps).
pub fn round_up_mib(bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes_parse_to_bytes() {
        assert_eq!(parse("1Gi"), Some(1 << 30));
        assert_eq!(parse("500Mi"), Some(500 << 20));
        assert_eq!(parse("1G"), Some(1_000_000_000));
        assert_eq!(parse("1.5Gi"), Some(3 << 29));
        assert_eq!(parse("1e3"), Some(1000));
        assert_eq!(parse("2048"), Some(2048));
        assert_eq!(parse("ten"), None);
        assert_eq!(parse("1Xi"), None);
        assert_eq!(parse("-1Gi"), None);
    }

    #[test]
    fn formatting_picks_the_largest_exact_binary_suffix() {
        assert_eq!(format(1 << 30), "1Gi");
        assert_eq!(format(1536 << 20), "1536Mi");
        assert_eq!(format(1000), "1000");
        assert_eq!(round_up_mib(1), 1 << 20);
        assert_eq!(round_up_mib(2 << 20), 2 << 20);
    }
}
