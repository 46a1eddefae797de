//! Helpers of the dashboard tests: chromium through chromedriver (WebDriver), and a
//! plain HTTP client that signs in, reads pages and posts forms with their CSRF token.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thirtyfour::prelude::*;

use super::http_ok;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Where screenshots go: `$CARGO_TARGET_DIR` or the workspace's `target/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    dir
}

/// chromedriver on a free port; killed on drop.
pub struct Driver {
    child: Child,
    /// chromedriver's URL.
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_chromedriver(log: &Path) -> Driver {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the dashboard tests need Debian's `{package}` \
             (apt-get install chromium chromium-driver; .ci/run installs it). Failing, not skipping."
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_ok(&format!("{}/status", driver.url)) {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer on port {port} in 30s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

pub async fn browser(driver: &Driver, profile: &Path) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).expect("binary");
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ] {
        caps.add_arg(arg).expect("arg");
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display()))
        .expect("arg");
    WebDriver::new(driver.url.as_str(), caps)
        .await
        .expect("a chromium session through chromedriver")
}

/// Polls `check` every 200 ms until it returns `Some`, failing after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn attr_of(d: &WebDriver, css: &str, attr: &str) -> Option<String> {
    d.find(By::Css(css)).await.ok()?.attr(attr).await.ok()?
}

pub async fn path_of(d: &WebDriver) -> String {
    d.current_url()
        .await
        .map(|u| u.path().to_string())
        .unwrap_or_default()
}

pub async fn shot(d: &WebDriver, name: &str) {
    let path = screenshot_dir().join(format!("{name}.png"));
    d.screenshot(&path).await.expect("screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// A plain HTTP client that follows no redirect (the test reads them).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// An `application/x-www-form-urlencoded` body.
pub fn form(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn csp_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `name=value` of a `Set-Cookie` the answer sets, if any.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")) && kv.len() > name.len() + 1)
        .map(str::to_string)
}

pub fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("value").to_string()
}

/// Signs in with `token` and returns the session cookie (`drover_session=…`).
pub async fn sign_in(c: &reqwest::Client, url: &str, token: &str) -> String {
    sign_in_to(c, url, token, "/ui/fleet").await
}

/// Signs in with `token`, asking to land on `next`; returns the session cookie.
pub async fn sign_in_to(c: &reqwest::Client, url: &str, token: &str, next: &str) -> String {
    let signin_page = c
        .get(format!("{url}/ui/signin"))
        .send()
        .await
        .expect("GET signin");
    let pre = set_cookie(&signin_page, "drover_signin").expect("sign-in cookie");
    let csrf = csrf_in(&signin_page.text().await.expect("body"));
    let resp = c
        .post(format!("{url}/ui/signin"))
        .header("cookie", &pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token), ("csrf", &csrf), ("next", next)]))
        .send()
        .await
        .expect("POST signin");
    assert_eq!(resp.status(), 303);
    set_cookie(&resp, "drover_session").expect("session cookie")
}

/// GETs a dashboard path with the session; checks 200 and the CSP, returns the HTML.
pub async fn page(c: &reqwest::Client, url: &str, session: &str, path: &str) -> String {
    let resp = c
        .get(format!("{url}{path}"))
        .header("cookie", session)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "{path}");
    assert_eq!(csp_of(&resp), CSP, "{path}");
    resp.text().await.expect("body")
}

/// Clicks the element `by` finds (failing the test, naming it, when there is none).
pub async fn click(d: &WebDriver, by: By) {
    let what = format!("{by:?}");
    d.find(by)
        .await
        .unwrap_or_else(|e| panic!("no element {what}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {what}: {e}"));
}

/// Types `text` into the element `by` finds.
pub async fn type_in(d: &WebDriver, by: By, text: &str) {
    let what = format!("{by:?}");
    d.find(by)
        .await
        .unwrap_or_else(|e| panic!("no element {what}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into {what}: {e}"));
}

/// A single-threaded tokio runtime for a test's async part.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
