//! Sign in with an API token, and sign out.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use drover_proto::auth::{Role, TokenKind};
use drover_proto::events::types;
use drover_store::NewEvent;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::Chrome;
use crate::web::session::{self, SESSION_COOKIE, SESSION_TTL, SIGNIN_COOKIE, Session};
use crate::web::{PageError, Web, csrf};

/// How long a sign-in form stays valid.
const SIGNIN_TTL: Duration = Duration::from_secs(3600);

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    error: Option<String>,
}

/// Query of the sign-in page.
#[derive(Deserialize, Default)]
pub(crate) struct SigninQuery {
    /// Where to go after signing in (a dashboard path).
    #[serde(default)]
    next: Option<String>,
}

/// Only dashboard paths are followed after sign-in: never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("/ui/signin")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/ui/fleet".to_string(),
    }
}

/// A sign-in form tied to this browser by a fresh nonce cookie.
async fn form_page(
    web: &Web,
    headers: &HeaderMap,
    next: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let key = web.key().await?;
    let nonce = session::nonce();
    let page = SigninPage {
        chrome: Chrome::anonymous(),
        csrf: csrf::token(key, &nonce),
        next,
        error,
    };
    let cookie = session::set_cookie(
        web,
        headers,
        SIGNIN_COOKIE,
        &nonce,
        "/ui/signin",
        SIGNIN_TTL,
    );
    Ok((status, [(header::SET_COOKIE, cookie)], Html(page.render()?)).into_response())
}

/// `GET /ui/signin`: the form (or straight on, when already signed in).
pub(crate) async fn form(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<SigninQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    if session::current(&web, &headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    form_page(&web, &headers, next, None, StatusCode::OK).await
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(crate) struct SigninForm {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /ui/signin`: checks the token like the API does, then sets the session
/// cookie. A refusal is recorded as `auth.failed` (never with the secret).
pub(crate) async fn submit(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(f): Form<SigninForm>,
) -> Result<Response, PageError> {
    session::refuse_cross_site(&headers)?;
    let key = web.key().await?;
    let next = safe_next(f.next.as_deref());
    // A form from another site, an expired one, or one whose cookie another tab
    // replaced: refused (403), with a fresh form to try again.
    let nonce = session::cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || csrf::check(&csrf::token(key, nonce), f.csrf.as_deref()).is_err() {
        return form_page(
            &web,
            &headers,
            next,
            Some("This sign-in form has expired; please sign in again.".to_string()),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let secret = f.token.as_deref().unwrap_or_default().trim();
    let store = &web.app.store;
    let refusal = if secret.is_empty() {
        Some(("missing token", None))
    } else {
        let hash = crate::auth::hash_secret(secret);
        match store.find_token_by_hash(&hash).await? {
            None => Some(("unknown token", None)),
            Some(rec) if !bool::from(rec.secret_hash.as_bytes().ct_eq(hash.as_bytes())) => {
                Some(("unknown token", None))
            }
            Some(rec) if rec.info.revoked_at.is_some() => {
                Some(("revoked token", Some(rec.info.id)))
            }
            Some(rec) if rec.info.kind != TokenKind::Api => Some((
                "only an API token can sign in to the dashboard",
                Some(rec.info.id),
            )),
            Some(rec) => {
                if let Err(e) = store.touch_token(&rec.info.id).await {
                    tracing::warn!(error = %e, "could not record token use");
                }
                let role = rec.info.role.unwrap_or(Role::Viewer);
                store
                    .append_event(NewEvent::new(
                        types::AUTH_LOGIN,
                        &rec.info.name,
                        serde_json::json!({
                            "token_id": rec.info.id,
                            "role": role.as_str(),
                            "via": "dashboard",
                        }),
                    ))
                    .await?;
                let value = session::issue(key, &rec.info.id, session::now_ms());
                let cookie =
                    session::set_cookie(&web, &headers, SESSION_COOKIE, &value, "/", SESSION_TTL);
                let gone = session::set_cookie(
                    &web,
                    &headers,
                    SIGNIN_COOKIE,
                    "",
                    "/ui/signin",
                    Duration::ZERO,
                );
                let mut resp = Redirect::to(&next).into_response();
                resp.headers_mut().append(header::SET_COOKIE, cookie);
                resp.headers_mut().append(header::SET_COOKIE, gone);
                return Ok(resp);
            }
        }
    };
    let (reason, token_id) = refusal.unwrap_or(("unknown token", None));
    store
        .append_event(NewEvent::new(
            types::AUTH_FAILED,
            "anonymous",
            serde_json::json!({
                "method": "POST",
                "path": "/ui/signin",
                "reason": reason,
                "token_id": token_id,
            }),
        ))
        .await?;
    form_page(
        &web,
        &headers,
        next,
        Some(format!("Sign-in refused: {reason}.")),
        StatusCode::UNAUTHORIZED,
    )
    .await
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub(crate) struct SignoutForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /ui/signout`: forgets the session cookie.
pub(crate) async fn signout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    s: Session,
    Form(f): Form<SignoutForm>,
) -> Result<Response, PageError> {
    session::refuse_cross_site(&headers)?;
    csrf::check(&s.csrf, f.csrf.as_deref())?;
    let gone = session::set_cookie(&web, &headers, SESSION_COOKIE, "", "/", Duration::ZERO);
    Ok(([(header::SET_COOKIE, gone)], Redirect::to("/ui/signin")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_followed() {
        assert_eq!(safe_next(Some("/ui/hosts/web-1")), "/ui/hosts/web-1");
        assert_eq!(
            safe_next(Some("/ui/fleet?selector=a%3Db")),
            "/ui/fleet?selector=a%3Db"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/ui/\\evil",
            "/api/v1/tokens",
            "/ui/signin",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/fleet", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/fleet");
    }
}
