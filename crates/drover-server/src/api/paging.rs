//! The paging rules every list endpoint shares: `limit`, cursors, and the page.

use drover_proto::page::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, Page};

use crate::error::ApiError;

/// Checks a `limit` parameter: 1 to [`MAX_PAGE_LIMIT`], default [`DEFAULT_PAGE_LIMIT`].
pub(crate) fn limit(given: Option<u32>) -> Result<u32, ApiError> {
    match given {
        None => Ok(DEFAULT_PAGE_LIMIT),
        Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "query parameter `limit`: {n} is out of range 1..={MAX_PAGE_LIMIT}"
        ))),
    }
}

/// Reads an `after` cursor that is a numeric id (`what` names it in the error).
pub(crate) fn id_cursor(given: Option<&str>, what: &str) -> Result<Option<i64>, ApiError> {
    given
        .map(|a| {
            a.trim().parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("query parameter `after`: `{a}` is not {what}"))
            })
        })
        .transpose()
}

/// The page of `items`, read with one more than `limit` to learn whether more follow:
/// at most `limit` of them, and the cursor (`key` of the last one) when more follow.
pub(crate) fn page_of<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}
