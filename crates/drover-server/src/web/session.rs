//! Dashboard sessions: a signed cookie naming the API token that signed in.
//!
//! The cookie is `v1.<token id>.<issued ms>.<nonce>.<mac>`, where the MAC is an
//! HMAC-SHA256 under a key kept in the store's `meta` table (created once, shared by
//! every controller on the store). The secret itself never leaves the sign-in form.
//! Every request checks the MAC and the age (at most [`SESSION_TTL`]), then reads the
//! token from the store: revoking a token ends its sessions at once, and its role is
//! the one in force now. Nothing is kept in memory that a restart would miss
//! (decision 0012).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use drover_proto::auth::{Role, TokenKind};
use drover_store::Store;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::{PageError, Web};

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "drover_session";
/// Name of the cookie that ties the sign-in form to its browser (login CSRF).
pub(crate) const SIGNIN_COOKIE: &str = "drover_signin";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Where the key lives in the store's `meta` table.
const KEY_META: &str = "dashboard.session_key";

/// The signing key: 256 random bits.
pub(crate) struct Key([u8; 32]);

impl Key {
    /// Reads the key from the store, creating it on first use. Several controllers
    /// starting together agree on one: the first insert wins and all read it back.
    pub async fn load(store: &Store) -> Result<Key, PageError> {
        if store.meta_get(KEY_META).await?.is_none() {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            store.meta_set_once(KEY_META, &hex::encode(bytes)).await?;
        }
        let text = store
            .meta_get(KEY_META)
            .await?
            .ok_or_else(|| PageError::internal("session key vanished from the store"))?;
        let bytes = hex::decode(text.trim()).map_err(PageError::internal)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| PageError::internal("session key in the store is not 32 bytes"))?;
        Ok(Key(key))
    }

    /// HMAC-SHA256 of `purpose` and `data`, in hex.
    pub fn mac(&self, purpose: &str, data: &str) -> String {
        hex::encode(self.mac_bytes(purpose, data))
    }

    fn mac_bytes(&self, purpose: &str, data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// True if `given` (hex) is the MAC of `purpose` and `data`; constant time.
    pub fn verify(&self, purpose: &str, data: &str, given: &str) -> bool {
        let Ok(given) = hex::decode(given) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data.as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

/// A fresh random nonce (128 bits, hex).
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The cookie value of a new session of `token_id`, issued at `now_ms`.
pub(crate) fn issue(key: &Key, token_id: &str, now_ms: i64) -> String {
    let payload = format!("v1.{token_id}.{now_ms}.{}", nonce());
    let mac = key.mac("session", &payload);
    format!("{payload}.{mac}")
}

/// What a valid cookie says, before the token is looked up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Claims {
    /// The token that signed in.
    pub token_id: String,
    /// The session's nonce (CSRF tokens derive from it).
    pub nonce: String,
}

/// Checks a cookie value's MAC and age.
pub(crate) fn verify(key: &Key, value: &str, now_ms: i64) -> Option<Claims> {
    let (payload, mac) = value.rsplit_once('.')?;
    if !key.verify("session", payload, mac) {
        return None;
    }
    let mut parts = payload.split('.');
    let (Some("v1"), Some(token_id), Some(issued), Some(nonce), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let issued: i64 = issued.parse().ok()?;
    let ttl = i64::try_from(SESSION_TTL.as_millis()).ok()?;
    // A little slack for clocks of several controllers.
    if issued > now_ms + 60_000 || now_ms - issued > ttl {
        return None;
    }
    Some(Claims {
        token_id: token_id.to_string(),
        nonce: nonce.to_string(),
    })
}

/// The value of cookie `name` in the request, if any.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, and `Secure` when the dashboard
/// is reached over HTTPS (the controller's public URL is `https://…`, or a TLS proxy in
/// front says `X-Forwarded-Proto: https`). `max_age` zero deletes the cookie.
pub(crate) fn set_cookie(
    web: &Web,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
) -> HeaderValue {
    let https = web.app.public_url().starts_with("https://")
        || headers
            .get("X-Forwarded-Proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A signed-in user of the dashboard (any role).
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The id of the token signed in with.
    pub token_id: String,
    /// The token's name: the actor of what the user does.
    pub name: String,
    /// The token's role, as it is now.
    pub role: Role,
    /// The CSRF token for this session's forms.
    pub csrf: String,
}

impl Session {
    /// True if the user may change things (operator or admin).
    pub fn can_operate(&self) -> bool {
        self.role >= Role::Operator
    }

    /// The user as an API operator, so a dashboard form runs exactly the API's code
    /// for the same change (403 page below the operator role).
    pub fn operator(&self) -> Result<crate::auth::Operator, PageError> {
        self.require(Role::Operator)?;
        Ok(crate::auth::Operator(crate::auth::ApiCaller {
            token_id: self.token_id.clone(),
            name: self.name.clone(),
            role: self.role,
        }))
    }

    /// 403 page unless the user has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), PageError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(PageError::forbidden(format!(
                "this needs the {} role; token `{}` has {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            )))
        }
    }
}

/// Why there is no session: sent to sign in (a redirect; for an htmx request an
/// `HX-Redirect`, so the whole page goes there), or an error.
pub(crate) enum NoSession {
    /// Not signed in, or the session ended: where to come back to, and whether htmx
    /// asked (it gets 401 with `HX-Redirect`: XHR would follow a 303 silently).
    SignIn(String, bool),
    /// The store failed.
    Error(PageError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignIn(next, htmx) => {
                let to = format!("/ui/signin?next={}", super::pages::urlencode(&next));
                if !htmx {
                    return Redirect::to(&to).into_response();
                }
                let mut resp = StatusCode::UNAUTHORIZED.into_response();
                if let Ok(v) = HeaderValue::from_str(&to) {
                    resp.headers_mut().insert("HX-Redirect", v);
                }
                resp
            }
            NoSession::Error(e) => e.into_response(),
        }
    }
}

impl From<PageError> for NoSession {
    fn from(e: PageError) -> NoSession {
        NoSession::Error(e)
    }
}

/// The session of a request, if its cookie is valid and its token still good.
pub(crate) async fn current(web: &Web, headers: &HeaderMap) -> Result<Option<Session>, PageError> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let key = web.key().await?;
    let Some(claims) = verify(key, value, now_ms()) else {
        return Ok(None);
    };
    let Some(rec) = web.app.store.get_token(&claims.token_id).await? else {
        return Ok(None);
    };
    if rec.info.revoked_at.is_some() || rec.info.kind != TokenKind::Api {
        return Ok(None);
    }
    Ok(Some(Session {
        token_id: claims.token_id.clone(),
        csrf: super::csrf::token(key, &claims.nonce),
        name: rec.info.name,
        role: rec.info.role.unwrap_or(Role::Viewer),
    }))
}

impl FromRequestParts<Arc<Web>> for Session {
    type Rejection = NoSession;

    async fn from_request_parts(
        parts: &mut Parts,
        web: &Arc<Web>,
    ) -> Result<Self, Self::Rejection> {
        match current(web, &parts.headers).await? {
            Some(s) => Ok(s),
            None => {
                // An htmx poll comes from the page the user looks at: go back there.
                let htmx = parts.headers.contains_key("HX-Request");
                let next = if htmx {
                    parts
                        .headers
                        .get("HX-Current-URL")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|u| u.find("/ui/").map(|i| u[i..].to_string()))
                        .unwrap_or_else(|| "/ui/fleet".to_string())
                } else {
                    parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/ui/fleet".to_string())
                };
                Err(NoSession::SignIn(next, htmx))
            }
        }
    }
}

/// 403 for a request that some other site sent (`Sec-Fetch-Site: cross-site`):
/// defence in depth next to the CSRF token and SameSite cookies.
pub(crate) fn refuse_cross_site(headers: &HeaderMap) -> Result<(), PageError> {
    match headers.get("Sec-Fetch-Site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") => Err(PageError {
            status: StatusCode::FORBIDDEN,
            detail: "cross-site request refused".to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key([7u8; 32])
    }

    #[test]
    fn a_cookie_verifies_until_it_expires() {
        let k = key();
        let now = 1_700_000_000_000;
        let v = issue(&k, "tok_abc", now);
        let c = verify(&k, &v, now + 1000).expect("valid");
        assert_eq!(c.token_id, "tok_abc");
        let ttl = SESSION_TTL.as_millis() as i64;
        assert!(verify(&k, &v, now + ttl + 1).is_none(), "expired");
        assert!(verify(&k, &v, now - 120_000).is_none(), "from the future");
    }

    #[test]
    fn a_changed_or_foreign_cookie_is_refused() {
        let k = key();
        let v = issue(&k, "tok_abc", 1000);
        let forged = v.replacen("tok_abc", "tok_adm", 1);
        assert!(verify(&k, &forged, 2000).is_none());
        assert!(verify(&Key([8u8; 32]), &v, 2000).is_none());
        assert!(verify(&k, "garbage", 2000).is_none());
        assert!(verify(&k, "", 2000).is_none());
        assert!(verify(&k, "v1.a.b.c.d.e", 2000).is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; drover_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
