//! The `http-request` runner against a real HTTP server on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::ActionStatus;
use super::http::run_http;

/// Echoes the request: method, query, chosen headers, body (as JSON when it is JSON).
async fn echo(
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut seen = BTreeMap::new();
    for name in [
        "content-type",
        "x-test",
        "authorization",
        "cookie",
        "user-agent",
    ] {
        if let Some(v) = headers.get(name) {
            seen.insert(name, v.to_str().unwrap_or("?").to_string());
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({"method": method.as_str(), "query": query, "headers": seen, "body": body})
            .to_string(),
    )
        .into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    let code = StatusCode::from_u16(code).unwrap();
    (code, [("x-reason", "asked")], format!("status {code}")).into_response()
}

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/status/{code}", get(status))
        .route(
            "/text",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "{\"a\": 1}") }),
        )
        .route(
            "/badjson",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{not json") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .route("/huge", get(|| async { vec![b'a'; 16 * 1024 * 1024 + 1] }))
        .route(
            "/redirect",
            get(|| async { Redirect::to("/echo?from=redirect") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn params(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

async fn request(v: Value) -> (ActionStatus, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    run_http(&params(v), &CancellationToken::new()).await
}

#[tokio::test]
async fn a_json_response_is_parsed() {
    let addr = serve().await;
    let (status, result) = request(json!({"url": format!("http://{addr}/echo?x=1")})).await;
    assert_eq!(status, ActionStatus::Succeeded);
    assert_eq!(result["status_code"], json!(200));
    assert_eq!(result["parsed"], json!(true));
    assert_eq!(result["body"]["method"], json!("GET"));
    assert_eq!(result["body"]["query"], json!("x=1"));
    assert_eq!(
        result["headers"]["content-type"],
        json!("application/json; charset=utf-8")
    );
    let ua = result["body"]["headers"]["user-agent"].as_str().unwrap();
    assert!(ua.starts_with("drover/"), "{ua}");
}

#[tokio::test]
async fn other_bodies_stay_text() {
    let addr = serve().await;
    for path in ["/text", "/badjson"] {
        let (status, result) = request(json!({"url": format!("http://{addr}{path}")})).await;
        assert_eq!(status, ActionStatus::Succeeded);
        assert_eq!(result["parsed"], json!(false), "{path}");
        assert!(result["body"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn an_object_body_is_sent_as_json_with_headers_auth_cookies_and_query() {
    let addr = serve().await;
    let (status, result) = request(json!({
        "url": format!("http://{addr}/echo"),
        "body": {"name": "web", "count": 2},
        "headers": {"X-Test": "yes"},
        "params": {"q": "a b"},
        "cookies": {"sid": "s1"},
        "username": "alice",
        "password": "secret",
    }))
    .await;
    assert_eq!(status, ActionStatus::Succeeded, "{result}");
    let body = &result["body"];
    assert_eq!(body["method"], json!("POST"));
    assert_eq!(body["body"], json!({"name": "web", "count": 2}));
    assert_eq!(body["query"], json!("q=a+b"));
    assert_eq!(body["headers"]["content-type"], json!("application/json"));
    assert_eq!(body["headers"]["x-test"], json!("yes"));
    assert_eq!(body["headers"]["cookie"], json!("sid=s1"));
    // base64("alice:secret")
    assert_eq!(
        body["headers"]["authorization"],
        json!("Basic YWxpY2U6c2VjcmV0")
    );
}

#[tokio::test]
async fn a_string_body_is_sent_as_is_with_the_given_method() {
    let addr = serve().await;
    let (_, result) = request(json!({
        "url": format!("http://{addr}/echo"),
        "method": "put",
        "body": "plain words",
        "headers": {"Content-Type": "text/plain"},
    }))
    .await;
    assert_eq!(result["body"]["method"], json!("PUT"));
    assert_eq!(result["body"]["body"], json!("plain words"));
    assert_eq!(
        result["body"]["headers"]["content-type"],
        json!("text/plain")
    );
}

#[tokio::test]
async fn only_200_to_206_succeed() {
    let addr = serve().await;
    let cases = [
        (200, ActionStatus::Succeeded),
        (201, ActionStatus::Succeeded),
        (206, ActionStatus::Succeeded),
        (207, ActionStatus::Failed),
        (304, ActionStatus::Failed),
        (404, ActionStatus::Failed),
        (500, ActionStatus::Failed),
    ];
    for (code, expected) in cases {
        let (status, result) =
            request(json!({"url": format!("http://{addr}/status/{code}")})).await;
        assert_eq!(status, expected, "{code}");
        assert_eq!(result["status_code"], json!(code));
        assert_eq!(result["headers"]["x-reason"], json!("asked"), "{code}");
        assert_eq!(result["parsed"], json!(false));
    }
}

#[tokio::test]
async fn redirects_are_followed_only_when_allowed() {
    let addr = serve().await;
    let url = format!("http://{addr}/redirect");
    let (status, result) = request(json!({"url": url})).await;
    assert_eq!(status, ActionStatus::Failed);
    assert_eq!(result["status_code"], json!(303));
    assert_eq!(result["headers"]["location"], json!("/echo?from=redirect"));

    let (status, result) = request(json!({"url": url, "allow_redirects": true})).await;
    assert_eq!(status, ActionStatus::Succeeded);
    assert_eq!(result["body"]["query"], json!("from=redirect"));
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let addr = serve().await;
    let t0 = std::time::Instant::now();
    let (status, result) =
        request(json!({"url": format!("http://{addr}/slow"), "timeout": 0.3})).await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(status, ActionStatus::Timeout);
    assert_eq!(
        result,
        json!({"error": format!("GET http://{addr}/slow timed out after 0.3 seconds")})
    );
}

#[tokio::test]
async fn cancel_stops_the_request() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let addr = serve().await;
    let cancel = CancellationToken::new();
    let p = params(json!({"url": format!("http://{addr}/slow")}));
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { run_http(&p, &cancel).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let (status, _) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("cancel ends the request")
        .unwrap();
    assert_eq!(status, ActionStatus::Canceled);
}

#[tokio::test]
async fn listed_hosts_are_refused_before_anything_is_sent() {
    let addr = serve().await;
    let url = format!("http://{addr}/echo");
    let (status, result) = request(json!({"url": url, "url_hosts_blacklist": ["127.0.0.1"]})).await;
    assert_eq!(status, ActionStatus::Failed);
    assert_eq!(
        result,
        json!({"error": format!("URL \"{url}\" is blacklisted (host 127.0.0.1)")})
    );
    let (status, _) = request(json!({"url": url, "url_hosts_whitelist": ["127.0.0.1"]})).await;
    assert_eq!(status, ActionStatus::Succeeded);
    let (status, result) =
        request(json!({"url": url, "url_hosts_whitelist": ["example.com"]})).await;
    assert_eq!(status, ActionStatus::Failed);
    assert_eq!(
        result,
        json!({"error": format!("URL \"{url}\" is not whitelisted (host 127.0.0.1)")})
    );
}

#[tokio::test]
async fn a_refused_connection_is_failed_with_the_cause() {
    // Bind then drop: nothing listens on this port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (status, result) = request(json!({"url": format!("http://127.0.0.1:{port}/")})).await;
    assert_eq!(status, ActionStatus::Failed);
    let error = result["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("GET http://127.0.0.1:{port}/ failed: ")),
        "{error}"
    );
    assert!(error.to_lowercase().contains("refused"), "{error}");
}

#[tokio::test]
async fn a_body_over_16_mib_is_refused() {
    let addr = serve().await;
    let (status, result) = request(json!({"url": format!("http://{addr}/huge")})).await;
    assert_eq!(status, ActionStatus::Failed);
    assert_eq!(
        result,
        json!({"error": format!("GET http://{addr}/huge answered with a body over 16 MiB; not reading it")})
    );
}
