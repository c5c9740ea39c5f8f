//! HTTP dates (IMF-fixdate out; IMF-fixdate, RFC 850 and asctime in).

use super::*;

pub(super) const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
pub(super) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats seconds since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(super) fn format_http_date(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = crate::calendar::civil_from_days(days);
    let weekday = DAYS
        .get(usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("Sun");
    let month = MONTHS
        .get(usize::try_from(m.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an HTTP-date in any of the three formats RFC 9110 requires recipients to accept
/// (IMF-fixdate, RFC 850, asctime) into seconds since the epoch. Dates before 1970 are `None`.
pub(super) fn parse_http_date(s: &str) -> Option<u64> {
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let (day, month, year, time) = match tokens.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, day, month, year, time, "GMT"] => (
            parse_digits(day)?,
            *month,
            parse_fixed_digits(year, 4)?,
            *time,
        ),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (Some(day), Some(month), Some(yy), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            let yy = parse_fixed_digits(yy, 2)?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (parse_digits(day)?, month, year, *time)
        }
        // Sun Nov  6 08:49:37 1994
        [_, month, day, time, year] => (
            parse_digits(day)?,
            *month,
            parse_fixed_digits(year, 4)?,
            *time,
        ),
        _ => return None,
    };
    let month = MONTHS.iter().position(|m| *m == month)?;
    let mut hms = time.split(':');
    let (Some(h), Some(mi), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    let (h, mi, sec) = (
        parse_fixed_digits(h, 2)?,
        parse_fixed_digits(mi, 2)?,
        parse_fixed_digits(sec, 2)?,
    );
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 || year < 1970 {
        return None;
    }
    let days = crate::calendar::days_from_civil(
        i64::try_from(year).ok()?,
        i64::try_from(month).ok()? + 1,
        i64::try_from(day).ok()?,
    );
    let days = u64::try_from(days).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Parses exactly `n` ASCII digits.
pub(super) fn parse_fixed_digits(s: &str, n: usize) -> Option<u64> {
    if s.len() != n {
        return None;
    }
    parse_digits(s)
}
