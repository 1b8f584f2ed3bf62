//! Times as commands print them: `2026-12-06 14:57 UTC` for people (with how far away it
//! is where that matters), RFC 3339 (`2026-12-06T14:57:00Z`) in `--json` output.

use time::OffsetDateTime;

/// `2026-12-06 14:57 UTC`.
pub fn when(unix: u64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| format!("unix {unix}"))
}

/// [`when`], then how far from `now`: `2026-12-20 10:00 UTC (in 14 days)`.
pub fn when_from(unix: u64, now: u64) -> String {
    format!("{} ({})", when(unix), relative(unix, now))
}

/// `in 3 hours`, `2 days ago`, `now`: the largest whole unit.
pub fn relative(unix: u64, now: u64) -> String {
    let (secs, future) = match unix >= now {
        true => (unix - now, true),
        false => (now - unix, false),
    };
    let (n, unit) = match secs {
        0..=59 => return "now".into(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    match future {
        true => format!("in {n} {unit}{plural}"),
        false => format!("{n} {unit}{plural} ago"),
    }
}

/// RFC 3339, for JSON.
pub fn iso(unix: u64) -> String {
    OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_and_machines_get_their_forms() {
        // 2026-12-06 14:57:00 UTC
        let t = 1_796_569_020;
        assert_eq!(when(t), "2026-12-06 14:57 UTC");
        assert_eq!(iso(t), "2026-12-06T14:57:00Z");
        assert_eq!(
            when_from(t + 14 * 86_400, t),
            "2026-12-20 14:57 UTC (in 14 days)"
        );
        assert_eq!(relative(t, t + 3 * 3600), "3 hours ago");
        assert_eq!(relative(t + 60, t), "in 1 minute");
        assert_eq!(relative(t, t), "now");
    }
}
