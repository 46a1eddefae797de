//! Human durations, as given to `--timeout`, `--since` and `--exit-after`.
//!
//! A duration is one or more `NUMBER UNIT` parts, optionally separated by
//! whitespace: `500ms`, `10s`, `1m30s`, `2h`, `1d`, `1.5s`, `1h 30m`. Units are `ms`,
//! `s`, `m`, `h` and `d` (24 hours), case-sensitive; parts add up and may come in
//! any order. Numbers are decimal, with an optional fraction (`1.5s`); precision
//! below a nanosecond is dropped.
//!
//! ```
//! use std::time::Duration;
//! use drover_core::duration::{format_duration, parse_duration};
//!
//! assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
//! assert_eq!(
//!     parse_duration("30").unwrap_err().to_string(),
//!     "column 1: missing unit in `30`: did you mean `30s`?"
//! );
//! assert_eq!(format_duration(Duration::from_millis(125_000)), "2m05s");
//! ```

use std::time::Duration;

/// A duration that could not be parsed, with the place of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct DurationError {
    /// 1-based column, in characters, of the input where the problem is.
    pub column: usize,
    /// What is wrong, for people.
    pub message: String,
}

const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MS: u128 = 1_000_000;
/// The largest [`Duration`], in nanoseconds.
const MAX_NANOS: u128 = u64::MAX as u128 * NANOS_PER_SEC + (NANOS_PER_SEC - 1);
/// Fraction digits beyond this many are ignored (they are below a nanosecond even
/// for days, and keeping them could overflow the arithmetic).
const MAX_FRACTION_DIGITS: usize = 18;
const UNITS: &str = "expected ms, s, m, h or d";

/// Parses a human duration such as `1m30s`; see the [module documentation](self).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let err = |byte: usize, message: String| DurationError {
        column: s[..byte].chars().count() + 1,
        message,
    };
    let b = s.as_bytes();
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };

    let mut pos = skip_ws(0);
    if pos == b.len() {
        return Err(err(
            0,
            "empty duration; expected something like `30s`, `1m30s` or `500ms`".to_string(),
        ));
    }

    let mut total: u128 = 0;
    while pos < b.len() {
        let start = pos;
        if b[pos] == b'-' {
            return Err(err(pos, "negative durations are not allowed".to_string()));
        }
        if !b[pos].is_ascii_digit() {
            let found = s[pos..].chars().next().unwrap_or_default();
            return Err(err(pos, format!("expected a number, found `{found}`")));
        }
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let int_part = &s[start..pos];
        let mut frac_part = "";
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let frac_start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            if pos == frac_start {
                return Err(err(pos, "expected digits after `.`".to_string()));
            }
            frac_part = &s[frac_start..pos];
        }
        let number = &s[start..pos];

        let unit_start = pos;
        while pos < b.len() && b[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &s[unit_start..pos];
        if unit.is_empty() {
            if skip_ws(pos) == b.len() {
                let whole = s.trim();
                return Err(err(
                    start,
                    format!("missing unit in `{whole}`: did you mean `{whole}s`?"),
                ));
            }
            return Err(err(
                unit_start,
                format!("missing unit after `{number}`; {UNITS}"),
            ));
        }
        let unit_nanos: u128 = match unit {
            "ms" => NANOS_PER_MS,
            "s" => NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "h" => 3600 * NANOS_PER_SEC,
            "d" => 86_400 * NANOS_PER_SEC,
            _ => return Err(err(unit_start, format!("unknown unit `{unit}`; {UNITS}"))),
        };

        let too_large = || err(start, format!("duration too large at `{number}{unit}`"));
        let whole_nanos = int_part
            .bytes()
            .try_fold(0u128, |acc, d| {
                acc.checked_mul(10)?.checked_add(u128::from(d - b'0'))
            })
            .and_then(|n| n.checked_mul(unit_nanos))
            .ok_or_else(too_large)?;
        let frac_digits = &frac_part[..frac_part.len().min(MAX_FRACTION_DIGITS)];
        let frac_nanos = if frac_digits.is_empty() {
            0
        } else {
            let f: u128 = frac_digits.parse().expect("at most 18 ASCII digits");
            f * unit_nanos / 10u128.pow(frac_digits.len() as u32)
        };
        total = whole_nanos
            .checked_add(frac_nanos)
            .and_then(|n| total.checked_add(n))
            .filter(|&n| n <= MAX_NANOS)
            .ok_or_else(too_large)?;

        pos = skip_ws(pos);
    }

    Ok(Duration::new(
        (total / NANOS_PER_SEC) as u64,
        (total % NANOS_PER_SEC) as u32,
    ))
}

/// Formats a duration compactly, rounding down to two significant units:
/// `350ms` (under a second), `1.2s` (under a minute; `5s` when the tenths are 0),
/// `2m05s`, `1h02m`, `3d04h`.
///
/// The output always parses back with [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    if secs < 60 {
        let tenths = d.subsec_millis() / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    if secs < 3600 {
        return format!("{}m{:02}s", secs / 60, secs % 60);
    }
    if secs < 86_400 {
        return format!("{}h{:02}m", secs / 3600, secs % 3600 / 60);
    }
    format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parse_table() {
        let table: &[(&str, Duration)] = &[
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("1m30s", ms(90_000)),
            ("2h", ms(7_200_000)),
            ("1d", ms(86_400_000)),
            ("1.5s", ms(1_500)),
            ("0.5ms", Duration::from_micros(500)),
            ("1.25m", ms(75_000)),
            ("0s", Duration::ZERO),
            ("0ms", Duration::ZERO),
            ("1d2h3m4s5ms", ms(((26 * 60 + 3) * 60 + 4) * 1000 + 5)),
            ("30s1m", ms(90_000)),
            ("1s1s", ms(2_000)),
            (" 1m 30s ", ms(90_000)),
            ("1h\t15m", ms(4_500_000)),
            ("007s", ms(7_000)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("0.0000000009s", Duration::ZERO),
            ("1.0000000000000000000000000001s", ms(1_000)),
            ("18446744073709551615s", Duration::from_secs(u64::MAX)),
            ("18446744073709551615.999999999s", Duration::MAX),
        ];
        for (input, want) in table {
            assert_eq!(parse_duration(input), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn parse_errors() {
        let table: &[(&str, usize, &str)] = &[
            ("30", 1, "missing unit in `30`: did you mean `30s`?"),
            (" 30 ", 2, "missing unit in `30`: did you mean `30s`?"),
            ("1m30", 3, "missing unit in `1m30`: did you mean `1m30s`?"),
            ("1.5", 1, "missing unit in `1.5`: did you mean `1.5s`?"),
            (
                "30 s",
                3,
                "missing unit after `30`; expected ms, s, m, h or d",
            ),
            (
                "30%",
                3,
                "missing unit after `30`; expected ms, s, m, h or d",
            ),
            (
                "1.5.5s",
                4,
                "missing unit after `1.5`; expected ms, s, m, h or d",
            ),
            (
                "",
                1,
                "empty duration; expected something like `30s`, `1m30s` or `500ms`",
            ),
            (
                "   ",
                1,
                "empty duration; expected something like `30s`, `1m30s` or `500ms`",
            ),
            ("-5s", 1, "negative durations are not allowed"),
            ("1m-5s", 3, "negative durations are not allowed"),
            ("+5s", 1, "expected a number, found `+`"),
            ("s", 1, "expected a number, found `s`"),
            (".5s", 1, "expected a number, found `.`"),
            ("5s é", 4, "expected a number, found `é`"),
            ("1.s", 3, "expected digits after `.`"),
            ("10sec", 3, "unknown unit `sec`; expected ms, s, m, h or d"),
            ("1m5x", 4, "unknown unit `x`; expected ms, s, m, h or d"),
            ("5S", 2, "unknown unit `S`; expected ms, s, m, h or d"),
            ("5us", 2, "unknown unit `us`; expected ms, s, m, h or d"),
            (
                "18446744073709551616s",
                1,
                "duration too large at `18446744073709551616s`",
            ),
            (
                "1s 213503982334602d",
                4,
                "duration too large at `213503982334602d`",
            ),
            (
                "99999999999999999999999999999999999999999d",
                1,
                "duration too large at `99999999999999999999999999999999999999999d`",
            ),
            ("18446744073709551615s1s", 22, "duration too large at `1s`"),
        ];
        for (input, column, message) in table {
            let e = parse_duration(input).expect_err(input);
            assert_eq!(
                e,
                DurationError {
                    column: *column,
                    message: message.to_string()
                },
                "{input:?}"
            );
            assert_eq!(e.to_string(), format!("column {column}: {message}"));
        }
    }

    #[test]
    fn format_table() {
        let table: &[(Duration, &str)] = &[
            (Duration::ZERO, "0ms"),
            (Duration::from_micros(999), "0ms"),
            (ms(1), "1ms"),
            (ms(350), "350ms"),
            (ms(999), "999ms"),
            (ms(1_000), "1s"),
            (ms(1_099), "1s"),
            (ms(1_200), "1.2s"),
            (ms(1_250), "1.2s"),
            (ms(59_999), "59.9s"),
            (ms(60_000), "1m00s"),
            (ms(125_000), "2m05s"),
            (ms(3_599_999), "59m59s"),
            (ms(3_600_000), "1h00m"),
            (ms(3_720_000), "1h02m"),
            (ms(86_399_999), "23h59m"),
            (ms(86_400_000), "1d00h"),
            (ms(97_200_000), "1d03h"),
            (Duration::MAX, "213503982334601d07h"),
        ];
        for (d, want) in table {
            assert_eq!(format_duration(*d), *want, "{d:?}");
        }
    }

    /// How much [`format_duration`] may drop from `d` by rounding down.
    fn granularity(d: Duration) -> Duration {
        match d.as_secs() {
            0 => ms(1),
            1..60 => ms(100),
            60..3600 => Duration::from_secs(1),
            3600..86_400 => Duration::from_secs(60),
            _ => Duration::from_secs(3600),
        }
    }

    fn any_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..2_000_000_000).prop_map(Duration::from_nanos),
            (0u64..200_000_000).prop_map(Duration::from_millis),
            (0u64..10_000_000).prop_map(Duration::from_secs),
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        ]
    }

    proptest! {
        #[test]
        fn format_parses_back_within_granularity(d in any_duration()) {
            let text = format_duration(d);
            let back = parse_duration(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert!(back <= d, "{} parsed to {:?} > {:?}", text, back, d);
            prop_assert!(d - back < granularity(d), "{} parsed to {:?}, far from {:?}", text, back, d);
            prop_assert_eq!(format_duration(back), text);
        }

        #[test]
        fn parts_round_trip(
            d in 0u64..1000, h in 0u64..24, m in 0u64..60, s in 0u64..60, milli in 0u64..1000,
        ) {
            let text = format!("{d}d{h}h{m}m{s}s{milli}ms");
            let want = Duration::from_millis((((d * 24 + h) * 60 + m) * 60 + s) * 1000 + milli);
            prop_assert_eq!(parse_duration(&text), Ok(want));
        }

        #[test]
        fn parse_never_panics(input in "[0-9.a-z -]{0,12}") {
            if let Err(e) = parse_duration(&input) {
                prop_assert!(e.column >= 1 && e.column <= input.chars().count() + 1);
            }
        }
    }
}
