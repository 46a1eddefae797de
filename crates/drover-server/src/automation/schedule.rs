//! When timer rules fire: StackStorm's IntervalTimer, CronTimer and DateTimer.
//!
//! CronTimer follows APScheduler's cron semantics, as StackStorm does: fields
//! `year, month, day, day_of_week, hour, minute, second` (and a `timezone`); fields
//! finer than the finest one given default to their minimum, coarser ones to `*`, so
//! `{hour: 2}` fires daily at 02:00:00. `day_of_week` numbers count from Monday = 0,
//! as in APScheduler. The ISO `week` field is refused with a clear message.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
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

/// The croner pattern (`sec min hour dom month dow [year]`) for a CronTimer.
pub(crate) fn cron_pattern(params: &Value) -> Result<String, String> {
    if field(params, "week").is_some() {
        return Err("week: ISO week numbers are not supported; use day and month".into());
    }
    // Finest to coarsest, with APScheduler's minimum for each.
    let order = [
        ("second", "0"),
        ("minute", "0"),
        ("hour", "0"),
        ("day", "1"),
        ("month", "1"),
        ("year", "*"),
    ];
    let finest_given = order
        .iter()
        .position(|(name, _)| field(params, name).is_some())
        .or_else(|| field(params, "day_of_week").map(|_| 3));
    let mut values = Vec::new();
    for (i, (name, min)) in order.iter().enumerate() {
        let v = match field(params, name) {
            Some(v) => v,
            None if finest_given.is_some_and(|f| i < f) => (*min).to_string(),
            None => "*".to_string(),
        };
        values.push(v);
    }
    let dow = field(params, "day_of_week")
        .map(|d| weekday_names(&d))
        .unwrap_or_else(|| "*".into());
    // A day of week with no day of month: any day of the month.
    let dom = if field(params, "day_of_week").is_some() && field(params, "day").is_none() {
        "*".to_string()
    } else {
        values[3].clone()
    };
    let mut pattern = format!(
        "{} {} {} {} {} {}",
        values[0], values[1], values[2], dom, values[4], dow
    );
    if values[5] != "*" {
        pattern.push(' ');
        pattern.push_str(&values[5]);
    }
    Ok(pattern)
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
            let after = Utc
                .timestamp_millis_opt(after_ms)
                .single()
                .ok_or("time out of range")?
                .with_timezone(&tz);
            match c.find_next_occurrence(&after, false) {
                Ok(t) => Ok(t.with_timezone(&Utc).timestamp_millis()),
                Err(_) => Ok(NEVER),
            }
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
        assert!(cron_pattern(&json!({"week": 3})).is_err());
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
        ] {
            let e = next_after(kind, &params, base).unwrap_err();
            assert!(e.contains(needle), "{kind} {params}: {e}");
        }
    }
}
