//! The paging rules every list endpoint shares: `limit`, cursors, and the page.

use drover_proto::page::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// `limit` and `after`, for a list with no other filter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<u32>,
    /// Cursor: the `next` of the previous page.
    #[serde(default)]
    pub(crate) after: Option<String>,
}

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

/// A page of a bounded list the server holds whole (packs, rules, tokens…): the items
/// in the order of `key`, those whose key sorts after `after`, at most `limit`. The
/// cursor is the key of the page's last item.
pub(crate) fn page_after<T>(
    items: Vec<T>,
    after: Option<&str>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> Page<T> {
    let mut keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let rest: Vec<(String, T)> = keyed
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
        .take(limit as usize + 1)
        .collect();
    let page = page_of(rest, limit, |(k, _)| k.clone());
    Page {
        items: page.items.into_iter().map(|(_, t)| t).collect(),
        next: page.next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_after_walks_a_list_in_key_order_without_gaps_or_repeats() {
        let items: Vec<u32> = vec![5, 3, 9, 1, 7];
        let key = |n: &u32| format!("{n:03}");
        let first = page_after(items.clone(), None, 2, key);
        assert_eq!(first.items, vec![1, 3]);
        assert_eq!(first.next.as_deref(), Some("003"));
        let second = page_after(items.clone(), first.next.as_deref(), 2, key);
        assert_eq!(second.items, vec![5, 7]);
        let third = page_after(items.clone(), second.next.as_deref(), 2, key);
        assert_eq!(third.items, vec![9]);
        assert_eq!(third.next, None);
        // A cursor between keys (its item was removed meanwhile) resumes after it.
        assert_eq!(page_after(items, Some("004"), 10, key).items, vec![5, 7, 9]);
    }

    #[test]
    fn limits_outside_one_to_the_maximum_are_refused() {
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_PAGE_LIMIT + 1)).is_err());
        assert_eq!(limit(None).ok(), Some(DEFAULT_PAGE_LIMIT));
    }
}
