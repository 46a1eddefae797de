//! CSRF protection: synchronizer tokens derived from the session.
//!
//! A form's token is the HMAC of the session's nonce under the session key, so it is
//! tied to one session and needs no storage. Every state-changing form carries it in
//! the `csrf` field, and the handler checks it (constant time) before it changes
//! anything. The sign-in form, which has no session yet, is tied the same way to a
//! random nonce in a short-lived `drover_signin` cookie. SameSite=Strict cookies and
//! the `Sec-Fetch-Site` check are defence in depth.

use subtle::ConstantTimeEq;

use super::PageError;
use super::session::Key;

/// Purpose string of CSRF MACs (keeps them apart from session MACs).
const PURPOSE: &str = "csrf";

/// The CSRF token of the session (or sign-in form) with this nonce.
pub(crate) fn token(key: &Key, nonce: &str) -> String {
    key.mac(PURPOSE, nonce)
}

/// 403 unless `given` is the `expected` token (compared in constant time).
pub(crate) fn check(expected: &str, given: Option<&str>) -> Result<(), PageError> {
    match given {
        Some(g) if !g.is_empty() && bool::from(g.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        Some(_) => Err(PageError::forbidden(
            "the form's CSRF token is not valid for this session; reload the page and try again",
        )),
        None => Err(PageError::forbidden(
            "the form carries no CSRF token; reload the page and try again",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sessions_own_token_passes() {
        let expected = "ab12";
        assert!(check(expected, Some("ab12")).is_ok());
        assert!(check(expected, Some("ab13")).is_err());
        assert!(check(expected, Some("")).is_err());
        assert!(check(expected, None).is_err());
    }
}
