//! Paging shared by every list endpoint.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One page of a list. `next` is an opaque cursor: pass it back as `?after=` to get the
/// following page; null means this was the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page, in the endpoint's documented order.
    pub items: Vec<T>,
    /// Cursor for the next page, if any.
    pub next: Option<String>,
}

/// Largest `limit` any list endpoint accepts.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// `limit` used when the caller gives none.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
