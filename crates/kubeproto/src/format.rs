//! Text forms that Kubernetes JSON uses for values protobuf carries as numbers or bytes:
//! RFC 3339 timestamps, Go duration strings and standard base64.

use base64::Engine as _;

/// Seconds in a day.
const DAY: i64 = 86_400;
/// Nanoseconds in a second.
const SECOND_NS: u64 = 1_000_000_000;

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `seconds` since the Unix epoch as RFC 3339 in UTC, the form of `metav1.Time`
/// (`2024-01-02T03:04:05Z`), or with `micros` the form of `metav1.MicroTime`
/// (`2024-01-02T03:04:05.000000Z`).
///
/// Returns `None` outside the years 0 to 9999, which Go's `Time.MarshalJSON` refuses too.
pub(crate) fn rfc3339(seconds: i64, micros: Option<u32>) -> Option<String> {
    let days = seconds.div_euclid(DAY);
    let of_day = seconds.rem_euclid(DAY);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let date = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    Some(match micros {
        Some(micros) => format!("{date}.{micros:06}Z"),
        None => format!("{date}Z"),
    })
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`; exact for every `i64` day count that a timestamp in
/// seconds can produce.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both ranges are commented above, so the casts cannot truncate.
    (year, month as u32, day as u32)
}

/// A nanosecond count as Go's `time.Duration.String` writes it (`1h0m0s`, `1.5s`, `300ms`),
/// the JSON form of `metav1.Duration`.
pub(crate) fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let mut u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".to_string();
    }
    if u < SECOND_NS {
        let (unit, precision) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (whole, frac) = split_fraction(u, precision);
        return format!("{sign}{whole}{frac}{unit}");
    }
    let (whole_seconds, frac) = split_fraction(u, 9);
    u = whole_seconds;
    let seconds = u % 60;
    u /= 60;
    let mut out = format!("{seconds}{frac}s");
    if u > 0 {
        out = format!("{}m{out}", u % 60);
        u /= 60;
        if u > 0 {
            out = format!("{u}h{out}");
        }
    }
    format!("{sign}{out}")
}

/// Splits `value / 10^precision` into its whole part and a `.fraction` with trailing zeros
/// dropped (empty when the fraction is zero), as Go's `fmtFrac` does.
fn split_fraction(value: u64, precision: u32) -> (u64, String) {
    let scale = 10u64.pow(precision);
    let frac = value % scale;
    if frac == 0 {
        return (value / scale, String::new());
    }
    let digits = format!("{frac:0width$}", width = precision as usize);
    (value / scale, format!(".{}", digits.trim_end_matches('0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_rfc3339_with_seconds() {
        assert_eq!(rfc3339(0, None).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_704_164_645, None).as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            rfc3339(951_782_400, None).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
    }

    #[test]
    fn times_before_the_epoch_count_backwards() {
        assert_eq!(rfc3339(-1, None).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(
            rfc3339(-62_135_596_800, None).as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
    }

    #[test]
    fn micro_times_always_carry_six_fraction_digits() {
        assert_eq!(
            rfc3339(1_704_164_645, Some(0)).as_deref(),
            Some("2024-01-02T03:04:05.000000Z")
        );
        assert_eq!(
            rfc3339(1_704_164_645, Some(120)).as_deref(),
            Some("2024-01-02T03:04:05.000120Z")
        );
    }

    #[test]
    fn years_past_9999_cannot_be_written() {
        assert_eq!(rfc3339(253_402_300_800, None), None);
        assert_eq!(rfc3339(i64::MIN, None), None);
    }

    #[test]
    fn durations_read_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-5_000_000_000, "-5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, text) in cases {
            assert_eq!(go_duration(nanos), text, "{nanos} ns");
        }
    }

    #[test]
    fn bytes_are_padded_standard_base64() {
        assert_eq!(base64(b"admin"), "YWRtaW4=");
        assert_eq!(base64(b""), "");
    }
}
