//! HTTP to the controller, and the agent's view of whether the controller is reachable.
//!
//! The agent always connects out. Every request carries everything the controller needs
//! (the credential, and the state in the body), so that any controller behind a load
//! balancer can answer it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use drover_proto::agent::{
    CommandUpdate, EnrollRequest, EnrollResponse, Heartbeat, HeartbeatAck, OutputBatch, PollRequest,
};
use drover_proto::error::ApiError;
use reqwest::StatusCode;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Time limit of every request but the long poll.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of connecting to the controller.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What a long poll may take beyond the wait asked for.
pub(crate) const POLL_SLACK: Duration = Duration::from_secs(10);
/// How often a still-refused credential is reported again.
const UNAUTHORIZED_REMINDER: Duration = Duration::from_secs(300);

/// Why a request to the controller did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChannelError {
    /// No answer: connection refused or reset, DNS, TLS, time-out.
    #[error("cannot reach the controller: {0}")]
    Transport(String),
    /// 401: the bearer token (join token or credential) was refused.
    #[error("the controller refused the token (401): {0}")]
    Unauthorized(String),
    /// 5xx, 408 or 429: worth trying again.
    #[error("the controller answered {status}: {detail}")]
    Server {
        /// HTTP status.
        status: u16,
        /// What the controller said.
        detail: String,
    },
    /// Another 4xx: the controller will not accept this request as it is.
    #[error("the controller rejected the request ({status}): {detail}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// What the controller said.
        detail: String,
    },
    /// A success status with a body the agent cannot read.
    #[error("unreadable answer from the controller: {0}")]
    Decode(String),
}

impl ChannelError {
    /// Whether trying the same request again later may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        !matches!(self, ChannelError::Rejected { .. })
    }
}

#[derive(Debug, Default)]
struct LinkState {
    down: bool,
    down_since: Option<Instant>,
    unauthorized_logged: Option<Instant>,
    epoch: u64,
}

/// Whether the controller is reachable, shared by every loop of the agent; logs a warning
/// when the controller is lost, an info line when it is back, and an error when the
/// credential is refused.
#[derive(Debug, Default)]
pub(crate) struct Link {
    state: Mutex<LinkState>,
}

impl Link {
    /// A link presumed up.
    pub(crate) fn new() -> Link {
        Link::default()
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts reconnections: it changes each time the controller is reached after a
    /// failure, so that the first heartbeat after it carries the facts again.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// A request sent at `sent_at` succeeded. One sent before the controller was lost
    /// (a long poll held open) proves nothing about now and is ignored.
    pub(crate) fn succeeded(&self, sent_at: Instant) {
        let mut st = self.lock();
        if st.down_since.is_some_and(|t| sent_at < t) {
            return;
        }
        if st.down {
            let after = st.down_since.map(|t| t.elapsed()).unwrap_or_default();
            tracing::info!(
                after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                "connected to the controller again"
            );
            st.down = false;
            st.down_since = None;
            st.epoch += 1;
        }
        st.unauthorized_logged = None;
    }

    /// A request failed with `err`.
    pub(crate) fn failed(&self, err: &ChannelError) {
        let mut st = self.lock();
        match err {
            // The controller answered: it is reachable, the request was wrong.
            ChannelError::Rejected { .. } => return,
            ChannelError::Unauthorized(detail) => {
                let due = st
                    .unauthorized_logged
                    .is_none_or(|t| t.elapsed() >= UNAUTHORIZED_REMINDER);
                if due {
                    tracing::error!(
                        detail = %detail,
                        "the controller refused this agent's credential (401): it was revoked \
                         or is unknown; retrying with backoff until an operator restores it \
                         (or remove credential.json from the state dir and restart the agent \
                         with a join token to enroll again)"
                    );
                    st.unauthorized_logged = Some(Instant::now());
                }
            }
            _ => {
                if !st.down {
                    tracing::warn!(error = %err, "lost the controller; retrying with backoff");
                }
            }
        }
        if !st.down {
            st.down = true;
            st.down_since = Some(Instant::now());
        }
    }
}

/// Percent-encodes `s` for use as one path segment.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Text of a transport error with its causes.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The HTTP client of one agent.
#[derive(Clone)]
pub(crate) struct Channel {
    client: reqwest::Client,
    api: Arc<str>,
    credential: Option<Arc<str>>,
    link: Arc<Link>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("api", &self.api).finish()
    }
}

impl Channel {
    /// A channel to the controller at `controller` (base URL, without `/api/v1`).
    pub(crate) fn new(controller: &str, link: Arc<Link>) -> anyhow::Result<Channel> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = controller.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base)
            .with_context(|| format!("controller URL {base:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!("controller URL {base:?} must start with http:// or https://");
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(format!("drover-agent/{}", drover_proto::VERSION))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Channel {
            client,
            api: format!("{base}{}/agent", drover_proto::API_PREFIX).into(),
            credential: None,
            link,
        })
    }

    /// The same channel, authenticating with `credential` from now on.
    pub(crate) fn with_credential(mut self, credential: &str) -> Channel {
        self.credential = Some(credential.into());
        self
    }

    /// The shared reachability state.
    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Sends one request; its outcome is reported to the [`Link`] if `track`.
    async fn post<B: Serialize + ?Sized>(
        &self,
        path: &str,
        token: &str,
        body: &B,
        timeout: Duration,
        track: bool,
    ) -> Result<Vec<u8>, ChannelError> {
        let url = format!("{}{path}", self.api);
        let sent_at = Instant::now();
        let result = async {
            let resp = self
                .client
                .post(&url)
                .bearer_auth(token)
                .timeout(timeout)
                .json(body)
                .send()
                .await
                .map_err(|e| ChannelError::Transport(error_chain(&e)))?;
            let status = resp.status();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ChannelError::Transport(error_chain(&e)))?;
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let detail = match serde_json::from_slice::<ApiError>(&bytes) {
                Ok(e) => format!("{}: {}", e.error, e.detail),
                Err(_) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let text = text.trim();
                    if text.is_empty() {
                        status.canonical_reason().unwrap_or("no detail").to_string()
                    } else {
                        text.chars().take(300).collect()
                    }
                }
            };
            let code = status.as_u16();
            Err(match status {
                StatusCode::UNAUTHORIZED => ChannelError::Unauthorized(detail),
                StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                    ChannelError::Server {
                        status: code,
                        detail,
                    }
                }
                s if s.is_server_error() => ChannelError::Server {
                    status: code,
                    detail,
                },
                _ => ChannelError::Rejected {
                    status: code,
                    detail,
                },
            })
        }
        .await;
        if track {
            match &result {
                Ok(_) => self.link.succeeded(sent_at),
                Err(e) => self.link.failed(e),
            }
        }
        result
    }

    fn credential(&self) -> Result<&str, ChannelError> {
        self.credential
            .as_deref()
            .ok_or_else(|| ChannelError::Unauthorized("the agent has no credential yet".into()))
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ChannelError> {
        serde_json::from_slice(body).map_err(|e| ChannelError::Decode(e.to_string()))
    }

    /// `POST /agent/enroll` with the join token (not tracked by the [`Link`]: a refused
    /// join token is not a refused credential).
    pub(crate) async fn enroll(
        &self,
        join_token: &str,
        req: &EnrollRequest,
    ) -> Result<EnrollResponse, ChannelError> {
        let body = self
            .post("/enroll", join_token, req, REQUEST_TIMEOUT, false)
            .await?;
        Channel::decode(&body)
    }

    /// `POST /agent/heartbeat`.
    pub(crate) async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatAck, ChannelError> {
        let body = self
            .post("/heartbeat", self.credential()?, hb, REQUEST_TIMEOUT, true)
            .await?;
        Channel::decode(&body)
    }

    /// `POST /agent/poll`, waiting up to `wait` for work. Commands are returned undecoded
    /// so that one the agent cannot read does not hide the others.
    pub(crate) async fn poll(&self, wait: Duration) -> Result<RawPoll, ChannelError> {
        let req = PollRequest {
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let body = self
            .post("/poll", self.credential()?, &req, wait + POLL_SLACK, true)
            .await?;
        Channel::decode(&body)
    }

    /// `POST /agent/commands/{id}/output`.
    pub(crate) async fn output(&self, id: &str, batch: &OutputBatch) -> Result<(), ChannelError> {
        let path = format!("/commands/{}/output", path_segment(id));
        self.post(&path, self.credential()?, batch, REQUEST_TIMEOUT, true)
            .await
            .map(|_| ())
    }

    /// `POST /agent/commands/{id}/status`.
    pub(crate) async fn status(
        &self,
        id: &str,
        update: &CommandUpdate,
    ) -> Result<(), ChannelError> {
        let path = format!("/commands/{}/status", path_segment(id));
        self.post(&path, self.credential()?, update, REQUEST_TIMEOUT, true)
            .await
            .map(|_| ())
    }
}

/// A poll answer with its commands still as JSON.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RawPoll {
    /// Commands, each decoded on its own.
    #[serde(default)]
    pub(crate) commands: Vec<serde_json::Value>,
    /// Ids to cancel (anything not a string is ignored).
    #[serde(default)]
    pub(crate) cancel: Vec<serde_json::Value>,
}

impl RawPoll {
    /// Whether the wait ran out without work.
    pub(crate) fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.cancel.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("abc-1.2_3~"), "abc-1.2_3~");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn only_rejections_are_final() {
        assert!(ChannelError::Transport("x".into()).is_retryable());
        assert!(ChannelError::Unauthorized("x".into()).is_retryable());
        assert!(
            ChannelError::Server {
                status: 503,
                detail: "x".into()
            }
            .is_retryable()
        );
        assert!(
            !ChannelError::Rejected {
                status: 400,
                detail: "x".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn epoch_moves_when_the_controller_comes_back() {
        let link = Link::new();
        assert_eq!(link.epoch(), 0);
        let long_poll_sent = Instant::now();
        link.succeeded(Instant::now());
        assert_eq!(link.epoch(), 0);
        link.failed(&ChannelError::Transport("refused".into()));
        link.failed(&ChannelError::Transport("refused".into()));
        assert_eq!(link.epoch(), 0);
        // An answer to a request sent before the failure does not count.
        link.succeeded(long_poll_sent);
        assert_eq!(link.epoch(), 0);
        link.succeeded(Instant::now());
        assert_eq!(link.epoch(), 1);
        link.failed(&ChannelError::Rejected {
            status: 404,
            detail: "x".into(),
        });
        link.succeeded(Instant::now());
        assert_eq!(link.epoch(), 1);
    }

    #[test]
    fn controller_url_is_checked() {
        let link = Arc::new(Link::new());
        assert!(Channel::new("http://127.0.0.1:7070/", link.clone()).is_ok());
        assert!(Channel::new("ftp://x", link.clone()).is_err());
        assert!(Channel::new("not a url", link).is_err());
    }
}
