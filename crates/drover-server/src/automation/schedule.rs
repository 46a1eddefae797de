//! When timer rules fire: StackStorm's IntervalTimer, CronTimer and DateTimer.
//!
//! CronTimer follows APScheduler's cron semantics, as StackStorm does: fields
//! `year, month, day, day_of_week, hour, minute, second` (and a `timezone`); fields
//! finer than the finest one given default to their minimum, coarser ones to `*`, so
//! `{hour: 2}` fires daily at 02:00:00. `day_of_week` numbers count from Monday = 0,
//! as in APScheduler. The ISO `week` field (`{week: "*/2", day_of_week: 0, hour: 9}`:
//! every other Monday) keeps the firings that fall in the weeks it names.

use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// Never again (a date timer that fired, or one in the past).
pub(crate) const NEVER: i64 = i64::MAX;

const WEEKDAYS: [&str; 7] = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

fn field(params: &Value, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

fn timezone(params: &Value) -> Result<Tz, String> {
    match field(params, "timezone") {
        None => Ok(Tz::UTC),
        Some(name) => {
            Tz::from_str(&name).map_err(|_| format!("timezone: unknown time zone `{name}`"))
        }
    }
}

/// APScheduler day-of-week numbers (0 = Monday) to names croner reads.
fn weekday_names(spec: &str) -> String {
    let map_one = |t: &str| -> String {
        match t.parse::<usize>() {
            Ok(n) if n < 7 => WEEKDAYS[n].to_string(),
            _ => t.to_uppercase(),
        }
    };
    spec.split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => format!("{}-{}", map_one(a), map_one(b)),
                None => map_one(range),
            };
            match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// APScheduler's cron fields, coarsest first, with the value each takes when it is not
/// given but a coarser one is the finest given (`{hour: 2}`: minute and second 0).
const FIELDS: [(&str, &str); 8] = [
    ("year", "*"),
    ("month", "1"),
    ("week", "*"),
    ("day", "1"),
    ("day_of_week", "*"),
    ("hour", "0"),
    ("minute", "0"),
    ("second", "0"),
];

/// Each field's value as APScheduler sets it: given, or `*` when no finer field is
/// given, or its default when one is.
fn field_values(params: &Value) -> Vec<String> {
    let last_given = FIELDS
        .iter()
        .rposition(|(name, _)| field(params, name).is_some());
    FIELDS
        .iter()
        .enumerate()
        .map(|(i, (name, default))| match field(params, name) {
            Some(v) => v,
            None if last_given.is_some_and(|l| i > l) => (*default).to_string(),
            None => "*".to_string(),
        })
        .collect()
}

/// The croner pattern (`sec min hour dom month dow [year]`) for a CronTimer; the ISO
/// `week` field is applied by [`weeks`] on top.
pub(crate) fn cron_pattern(params: &Value) -> Result<String, String> {
    let v = field_values(params);
    let (year, month, day, dow, hour, minute, second) =
        (&v[0], &v[1], &v[3], &v[4], &v[5], &v[6], &v[7]);
    let mut pattern = format!(
        "{second} {minute} {hour} {day} {month} {}",
        if dow == "*" {
            "*".to_string()
        } else {
            weekday_names(dow)
        }
    );
    if year != "*" {
        pattern.push(' ');
        pattern.push_str(year);
    }
    Ok(pattern)
}

/// The ISO week numbers the `week` field allows (APScheduler's expressions: `*`,
/// `*/n`, `a`, `a-b`, `a-b/n`, comma lists; weeks 1 to 53), or `None` for any week.
pub(crate) fn weeks(params: &Value) -> Result<Option<[bool; 54]>, String> {
    let Some(spec) = field(params, "week") else {
        return Ok(None);
    };
    let bad = |why: &str| format!("week: `{spec}`: {why}");
    let number = |t: &str| -> Result<u32, String> {
        match t.trim().parse::<u32>() {
            Ok(n) if (1..=53).contains(&n) => Ok(n),
            _ => Err(bad(&format!("`{t}` is not a week number from 1 to 53"))),
        }
    };
    let mut allowed = [false; 54];
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => match s.trim().parse::<u32>() {
                Ok(n) if n > 0 => (r.trim(), n),
                _ => return Err(bad(&format!("`{s}` is not a positive step"))),
            },
            None => (part.trim(), 1),
        };
        let (from, to) = match range {
            "*" => (1, 53),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, 53),
                None => (number(r)?, number(r)?),
            },
        };
        if from > to {
            return Err(bad(&format!("the range {from}-{to} is empty")));
        }
        for w in (from..=to).step_by(step as usize) {
            allowed[w as usize] = true;
        }
    }
    Ok(Some(allowed))
}

fn cron(params: &Value) -> Result<croner::Cron, String> {
    let pattern = cron_pattern(params)?;
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(&pattern)
        .map_err(|e| format!("cron `{pattern}`: {e}"))
}

fn interval_ms(params: &Value) -> Result<i64, String> {
    let unit =
        field(params, "unit").ok_or("unit: required (weeks, days, hours, minutes, seconds)")?;
    let per = match unit.as_str() {
        "weeks" => 7 * 86_400_000,
        "days" => 86_400_000,
        "hours" => 3_600_000,
        "minutes" => 60_000,
        "seconds" => 1_000,
        other => {
            return Err(format!(
                "unit: unknown `{other}`: expected weeks, days, hours, minutes or seconds"
            ));
        }
    };
    let delta = params
        .get("delta")
        .and_then(Value::as_i64)
        .filter(|d| *d > 0)
        .ok_or("delta: required, a positive integer")?;
    Ok(delta.saturating_mul(per))
}

/// Checks a timer trigger's parameters without scheduling it.
pub(crate) fn check(kind: &str, params: &Value) -> Result<(), String> {
    next_after(kind, params, Utc::now().timestamp_millis()).map(|_| ())
}

/// The first firing strictly after `after_ms` (Unix ms), or [`NEVER`].
pub(crate) fn next_after(kind: &str, params: &Value, after_ms: i64) -> Result<i64, String> {
    match kind {
        "timer.interval" => Ok(after_ms.saturating_add(interval_ms(params)?)),
        "timer.cron" => {
            let tz = timezone(params)?;
            let c = cron(params)?;
            let weeks = weeks(params)?;
            let mut after = Utc
                .timestamp_millis_opt(after_ms)
                .single()
                .ok_or("time out of range")?
                .with_timezone(&tz);
            // Firings outside the allowed ISO weeks are skipped a week at a time; a
            // schedule with no firing in 2,000 weeks (nearly 40 years) never fires.
            for _ in 0..2000 {
                let Ok(t) = c.find_next_occurrence(&after, false) else {
                    return Ok(NEVER);
                };
                let week = t.iso_week().week() as usize;
                if weeks.is_none_or(|w| w[week]) {
                    return Ok(t.with_timezone(&Utc).timestamp_millis());
                }
                // The last second of t's ISO week: the search goes on from its end.
                let days_left = 6 - i64::from(t.weekday().num_days_from_monday());
                let end_of_week = t.date_naive() + chrono::Duration::days(days_left);
                after = match end_of_week
                    .and_hms_opt(23, 59, 59)
                    .and_then(|n| tz.from_local_datetime(&n).latest())
                {
                    Some(e) if e > t => e,
                    _ => t,
                };
            }
            Ok(NEVER)
        }
        "timer.date" => {
            let tz = timezone(params)?;
            let text = field(params, "date").ok_or("date: required (YYYY-MM-DD HH:MM:SS)")?;
            let at = match DateTime::parse_from_rfc3339(&text) {
                Ok(t) => t.with_timezone(&Utc),
                Err(_) => {
                    let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S").map_err(
                        |_| format!("date: `{text}` is not YYYY-MM-DD HH:MM:SS or RFC 3339"),
                    )?;
                    tz.from_local_datetime(&naive)
                        .earliest()
                        .ok_or_else(|| format!("date: `{text}` does not exist in {tz}"))?
                        .with_timezone(&Utc)
                }
            };
            let at = at.timestamp_millis();
            Ok(if at > after_ms { at } else { NEVER })
        }
        other => Err(format!("`{other}` is not a timer trigger")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn apscheduler_defaults_for_cron_fields() {
        assert_eq!(cron_pattern(&json!({"hour": 2})).unwrap(), "0 0 2 * * *");
        assert_eq!(
            cron_pattern(&json!({"minute": "*/5"})).unwrap(),
            "0 */5 * * * *"
        );
        assert_eq!(
            cron_pattern(&json!({"day_of_week": "0-4", "hour": 9})).unwrap(),
            "0 0 9 * * MON-FRI"
        );
        assert_eq!(
            cron_pattern(&json!({"second": "*/10"})).unwrap(),
            "*/10 * * * * *"
        );
        // APScheduler's order: fields finer than the finest given take their default.
        assert_eq!(cron_pattern(&json!({"day": 15})).unwrap(), "0 0 0 15 * *");
        assert_eq!(cron_pattern(&json!({"month": 6})).unwrap(), "0 0 0 1 6 *");
        assert_eq!(
            cron_pattern(&json!({"year": 2027})).unwrap(),
            "0 0 0 1 1 * 2027"
        );
        assert_eq!(
            cron_pattern(&json!({"week": "*/2", "day_of_week": 0, "hour": 9})).unwrap(),
            "0 0 9 * * MON"
        );
        assert_eq!(cron_pattern(&json!({"week": 3})).unwrap(), "0 0 0 1 * *");
    }

    #[test]
    fn iso_weeks() {
        // Every other Monday at 09:00, in the odd ISO weeks: 2026-11-22 is the Sunday
        // ending week 47, so Monday 2026-11-23 (week 48) is skipped for 2026-11-30
        // (week 49), then 2026-12-14 (week 51).
        let every_other = json!({"week": "1-53/2", "day_of_week": 0, "hour": 9});
        let base = at("2026-11-22T10:00:30Z");
        let first = next_after("timer.cron", &every_other, base).unwrap();
        assert_eq!(first, at("2026-11-30T09:00:00Z"));
        assert_eq!(
            next_after("timer.cron", &every_other, first).unwrap(),
            at("2026-12-14T09:00:00Z")
        );
        // Week 1 of 2027 starts on Monday 2027-01-04.
        assert_eq!(
            next_after("timer.cron", &json!({"week": 1, "day_of_week": 0}), base).unwrap(),
            at("2027-01-04T00:00:00Z")
        );
        // In a time zone: Monday 09:00 in Tokyo is 00:00 UTC.
        let tokyo = json!({"week": "1,49", "day_of_week": 0, "hour": 9, "timezone": "Asia/Tokyo"});
        assert_eq!(
            next_after("timer.cron", &tokyo, base).unwrap(),
            at("2026-11-30T00:00:00Z")
        );
        // APScheduler's quirk, kept: `week` alone means day 1 at 00:00 in that week,
        // which week 3 never holds.
        assert_eq!(
            next_after("timer.cron", &json!({"week": 3}), base).unwrap(),
            NEVER
        );
        let w = weeks(&json!({"week": "1-5/2,10"})).unwrap().unwrap();
        let on: Vec<usize> = (1..=53).filter(|i| w[*i]).collect();
        assert_eq!(on, [1, 3, 5, 10]);
    }

    #[test]
    fn next_firings() {
        let base = at("2026-11-22T10:00:30Z");
        assert_eq!(
            next_after(
                "timer.interval",
                &json!({"unit": "seconds", "delta": 5}),
                base
            )
            .unwrap(),
            base + 5_000
        );
        assert_eq!(
            next_after("timer.cron", &json!({"hour": 2}), base).unwrap(),
            at("2026-11-23T02:00:00Z")
        );
        assert_eq!(
            next_after(
                "timer.cron",
                &json!({"hour": 2, "timezone": "Europe/Paris"}),
                base
            )
            .unwrap(),
            at("2026-11-23T01:00:00Z")
        );
        // 2026-11-22 is a Sunday: the next weekday 09:00 is Monday.
        assert_eq!(
            next_after(
                "timer.cron",
                &json!({"day_of_week": "0-4", "hour": 9}),
                base
            )
            .unwrap(),
            at("2026-11-23T09:00:00Z")
        );
        assert_eq!(
            next_after("timer.date", &json!({"date": "2026-12-01 08:00:00"}), base).unwrap(),
            at("2026-12-01T08:00:00Z")
        );
        assert_eq!(
            next_after("timer.date", &json!({"date": "2020-01-01 00:00:00"}), base).unwrap(),
            NEVER
        );
        for (kind, params, needle) in [
            (
                "timer.interval",
                json!({"unit": "fortnights", "delta": 1}),
                "unit",
            ),
            (
                "timer.interval",
                json!({"unit": "seconds", "delta": 0}),
                "delta",
            ),
            (
                "timer.cron",
                json!({"hour": 2, "timezone": "Mars/Olympus"}),
                "timezone",
            ),
            ("timer.cron", json!({"hour": 25}), "cron"),
            ("timer.date", json!({"date": "tomorrow"}), "date"),
            ("timer.cron", json!({"week": 54}), "week"),
            ("timer.cron", json!({"week": "5-2"}), "week"),
            ("timer.cron", json!({"week": "*/0"}), "week"),
        ] {
            let e = next_after(kind, &params, base).unwrap_err();
            assert!(e.contains(needle), "{kind} {params}: {e}");
        }
    }
}
