//! The `limit` rule every list endpoint shares.

use drover_proto::page::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};

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
