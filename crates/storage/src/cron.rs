//! Standard 5-field cron schedules (`minute hour day-of-month month day-of-week`) as
//! DataImportCron's `spec.schedule` uses them: `*`, numbers, lists `a,b`, ranges `a-b`,
//! steps `*/n`, `a/n` and `a-b/n` (so HCO's `55 8/12 * * *` works). Times are UTC.

use k8s_openapi::jiff::{self, tz::TimeZone, Timestamp, Zoned};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    fields: [Vec<bool>; 5],
}

const RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)];

fn parse_field(text: &str, (low, high): (u32, u32)) -> Option<Vec<bool>> {
    let mut allowed = vec![false; high as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (low, high),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                // `a/n` runs from a to the end of the range.
                None if part.contains('/') => (r.parse().ok()?, high),
                None => {
                    let v = r.parse().ok()?;
                    (v, v)
                }
            },
        };
        // Day of week 7 is Sunday too.
        let (from, to) = if high == 6 {
            (from.min(7) % 7, if to == 7 { 6 } else { to })
        } else {
            (from, to)
        };
        if from < low || to > high || from > to {
            return None;
        }
        for v in (from..=to).step_by(step as usize) {
            allowed[v as usize] = true;
        }
    }
    Some(allowed)
}

impl Schedule {
    /// Parses a schedule; `None` when it is not a 5-field cron expression.
    pub fn parse(text: &str) -> Option<Schedule> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return None;
        }
        let mut fields: [Vec<bool>; 5] = Default::default();
        for (i, part) in parts.iter().enumerate() {
            fields[i] = parse_field(part, RANGES[i])?;
        }
        Some(Schedule { fields })
    }

    fn matches(&self, at: &Zoned) -> bool {
        let values = [
            at.minute() as usize,
            at.hour() as usize,
            at.day() as usize,
            at.month() as usize,
            at.weekday().to_sunday_zero_offset() as usize,
        ];
        values
            .iter()
            .zip(&self.fields)
            .all(|(v, allowed)| allowed.get(*v).copied().unwrap_or(false))
    }

    /// The first minute strictly after `after` the schedule fires (searching a year ahead).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(TimeZone::UTC);
        let mut at = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(jiff::Span::new().minutes(1))
            .ok()?;
        for _ in 0..(366 * 24 * 60) {
            if self.matches(&at) {
                return Some(at.timestamp());
            }
            at = at.checked_add(jiff::Span::new().minutes(1)).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn hcos_schedules_fire_when_they_say() {
        let twice_a_day = Schedule::parse("55 8/12 * * *").unwrap();
        assert_eq!(
            twice_a_day.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T08:55:00Z"))
        );
        assert_eq!(
            twice_a_day.next_after(at("2026-01-01T08:55:00Z")),
            Some(at("2026-01-01T20:55:00Z"))
        );
        let every_minute = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            every_minute.next_after(at("2026-01-01T00:00:30Z")),
            Some(at("2026-01-01T00:01:00Z"))
        );
        let sundays = Schedule::parse("0 0 * * 0").unwrap();
        assert_eq!(
            sundays.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-04T00:00:00Z"))
        );
        let listed = Schedule::parse("0,30 */6 1-2 1 *").unwrap();
        assert_eq!(
            listed.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T00:30:00Z"))
        );
    }

    #[test]
    fn malformed_schedules_are_refused() {
        for bad in ["", "* * * *", "61 * * * *", "*/0 * * * *", "a b c d e"] {
            assert_eq!(Schedule::parse(bad), None, "{bad}");
        }
    }
}
