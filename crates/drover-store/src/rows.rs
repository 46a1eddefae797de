//! Conversions between column values and domain types.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;

use crate::StoreError;

/// Now, in the store's unit (Unix milliseconds).
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Milliseconds to a UTC time (out-of-range values clamp to the epoch).
pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Optional milliseconds to an optional UTC time.
pub(crate) fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(time)
}

/// Parses a JSON column.
pub(crate) fn json<T: DeserializeOwned>(table: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain data structs to a String cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// Reads an enum column through its `parse` function.
pub(crate) fn parse_enum<T>(
    table: &'static str,
    text: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(text).ok_or_else(|| StoreError::Corrupt {
        table,
        reason: format!("unknown value `{text}`"),
    })
}
