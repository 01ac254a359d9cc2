//! Calendar dates without a date library: ISO `YYYY-MM-DD` parsing to a day
//! number (days since 1970-01-01) and back, for the date axis of the plots
//! and the chronological-order check; and the UTC timestamp that names a
//! run folder.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day number (`civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day number of a date written `YYYY-MM-DD` (anything after the day,
/// such as a time, is ignored); `None` if it is not such a date.
pub fn parse_iso_day(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if b.len() > 10 && !matches!(b[10], b'T' | b' ') {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Days since 1970-01-01, with the time of day as a fraction, of
/// `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.f]]`
/// (a zone suffix is ignored); `None` otherwise.
pub fn parse_iso_time(s: &str) -> Option<f64> {
    let s = s.trim();
    let day = parse_iso_day(s)? as f64;
    let rest = s.get(10..)?;
    if rest.is_empty() {
        return Some(day);
    }
    let t = rest.get(1..)?;
    let hh: f64 = t.get(0..2)?.parse().ok()?;
    if t.get(2..3)? != ":" {
        return None;
    }
    let mm: f64 = t.get(3..5)?.parse().ok()?;
    let ss: f64 = match t.get(5..6) {
        Some(":") => {
            let end = t[6..]
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .map_or(t.len(), |k| k + 6);
            t.get(6..end)?.parse().ok()?
        }
        _ => 0.0,
    };
    if hh >= 24.0 || mm >= 60.0 || ss >= 61.0 {
        return None;
    }
    Some(day + (hh * 3600.0 + mm * 60.0 + ss) / 86_400.0)
}

/// `YYYY-MM-DD` of a day number.
pub fn format_day(z: i64) -> String {
    let (y, m, d) = civil_from_days(z);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM` of a day number (axis labels).
pub fn format_month(z: i64) -> String {
    let (y, m, _) = civil_from_days(z);
    format!("{y:04}-{m:02}")
}

/// The current UTC time as `YYYYMMDD-HHMMSS`.
pub fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(parse_iso_day("2013-05-13"), Some(15_838));
        for z in [-1000, 0, 15_838, 17_662, 60_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(format_day(17_662), "2018-05-11");
        assert_eq!(parse_iso_day("2018-05-11T00:00:00"), Some(17_662));
        assert_eq!(parse_iso_day("11/05/2018"), None);
        assert_eq!(parse_iso_day("2018-13-01"), None);
        assert_eq!(parse_iso_time("2018-05-11"), Some(17_662.0));
        assert_eq!(parse_iso_time("2018-05-11 12:00"), Some(17_662.5));
        assert_eq!(parse_iso_time("2018-05-11T06:00:00Z"), Some(17_662.25));
        assert_eq!(parse_iso_time("2018-05-11T6h"), None);
    }
}
