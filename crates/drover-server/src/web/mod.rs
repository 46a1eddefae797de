//! The web dashboard: server-rendered pages under `/ui/`, served by the controller
//! itself with every asset embedded in the binary (no CDN, no node toolchain).
//!
//! Pages are askama templates (compile-time checked, HTML-escaped). Live parts are
//! fragments that the vendored htmx polls. Every answer carries a strict
//! Content-Security-Policy ([`CSP`]); signed-in users hold a signed session cookie
//! ([`session`]) and every form that changes something carries a CSRF token ([`csrf`]).
//! See `docs/dashboard.md` and decision 0012.

mod csrf;
mod inventory;
mod pages;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::state::AppState;

/// The Content-Security-Policy of every dashboard answer: nothing inline, nothing
/// from elsewhere, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Largest form body the dashboard accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What the dashboard's handlers share: the controller's state and the session key
/// (read from the store once, then kept: it never changes).
pub(crate) struct Web {
    /// The controller's state.
    pub app: Arc<AppState>,
    key: tokio::sync::OnceCell<session::Key>,
    counts: inventory::CountsCache,
    delta: inventory::DeltaCache,
}

impl Web {
    /// The automation catalog (packs, actions, rules) as it is now.
    pub async fn catalog(&self) -> Result<Arc<crate::automation::catalog::Catalog>, PageError> {
        self.app
            .automation
            .catalog
            .get(&self.app)
            .await
            .map_err(PageError::internal)
    }

    /// The key that signs session cookies and derives CSRF tokens.
    pub async fn key(&self) -> Result<&session::Key, PageError> {
        self.key
            .get_or_try_init(|| session::Key::load(&self.app.store))
            .await
    }
}

/// The dashboard's routes: `/` redirects to the fleet page, pages live under `/ui/`.
pub(crate) fn router(app: Arc<AppState>) -> Router {
    let web = Arc::new(Web {
        app,
        key: tokio::sync::OnceCell::new(),
        counts: Default::default(),
        delta: Default::default(),
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/fleet") }))
        .route("/ui", get(|| async { Redirect::to("/ui/fleet") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/fleet") }))
        .route("/ui/assets/{name}", get(asset))
        .merge(pages::routes())
        .route("/ui/{*rest}", axum::routing::any(no_page))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(web)
}

/// Adds the CSP and the other security headers to every dashboard answer.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A dashboard path that names no page: the HTML 404 (with the CSP), not the API's.
async fn no_page(uri: axum::http::Uri) -> PageError {
    PageError::not_found(format!("no page at {}", uri.path()))
}

/// Embedded static files: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/htmx.min.js"),
    ),
    (
        "htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/htmx.LICENSE"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard.css"),
    ),
];

/// `GET /ui/assets/{name}`: an embedded file, cached for a day. Asset URLs carry the
/// drover version (`?v=`), so an upgrade is picked up at once.
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=86400, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        None => PageError::not_found(format!("no asset `{name}`")).into_response(),
    }
}

/// A page that could not be shown: an HTML error page with a status code.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    detail: String,
}

impl PageError {
    /// 404 with a reason.
    pub fn not_found(detail: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            detail: detail.into(),
        }
    }

    /// 400 with a reason (a malformed query).
    pub fn bad_request(detail: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            detail: detail.into(),
        }
    }

    /// 403 with a reason.
    pub fn forbidden(detail: impl Into<String>) -> PageError {
        PageError {
            status: StatusCode::FORBIDDEN,
            detail: detail.into(),
        }
    }

    /// 500: logged in full, shown in general terms.
    pub fn internal(e: impl std::fmt::Display) -> PageError {
        tracing::error!(error = %e, "dashboard: internal error");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: "internal error; see the controller log".to_string(),
        }
    }
}

impl From<drover_store::StoreError> for PageError {
    fn from(e: drover_store::StoreError) -> PageError {
        match e {
            drover_store::StoreError::NotFound(what) => PageError::not_found(what),
            e => PageError::internal(e),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> PageError {
        PageError::internal(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = pages::ErrorPage {
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("error"),
            detail: &self.detail,
            version: drover_proto::VERSION,
        };
        match askama::Template::render(&page) {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.detail).into_response(),
        }
    }
}
