//! Health checks of a running instance: a probe (HTTP on loopback, TCP connect, or a
//! program in the release directory) every `interval`, each bounded by `timeout`;
//! `healthy_threshold` passes in a row make it healthy, `unhealthy_threshold` failures
//! in a row unhealthy, and until one of them is reached it stays what it was (unknown at
//! first).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use drover_proto::deploy::{Health, HealthProbe, HealthSpec};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::env;
use crate::process::signal_group;

/// Most bytes of an HTTP body read to look for the expected text.
const BODY_LIMIT: usize = 1024 * 1024;

/// Consecutive results and the health they add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    passes: u32,
    fails: u32,
    health: Health,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            passes: 0,
            fails: 0,
            health: Health::Unknown,
        }
    }
}

impl Tally {
    /// Adds one probe result; returns the health now.
    pub(crate) fn record(&mut self, passed: bool, spec: &HealthSpec) -> Health {
        if passed {
            self.passes = self.passes.saturating_add(1);
            self.fails = 0;
            if self.passes >= spec.healthy_threshold.max(1) {
                self.health = Health::Healthy;
            }
        } else {
            self.fails = self.fails.saturating_add(1);
            self.passes = 0;
            if self.fails >= spec.unhealthy_threshold.max(1) {
                self.health = Health::Unhealthy;
            }
        }
        self.health
    }
}

/// What a probe needs besides its spec.
#[derive(Debug, Clone)]
pub(crate) struct ProbeEnv {
    /// Release directory (for exec probes).
    pub(crate) release_dir: PathBuf,
    /// Environment (for exec probes).
    pub(crate) env: Vec<(String, String)>,
    /// HTTP client (no proxy).
    pub(crate) client: reqwest::Client,
}

/// Runs one probe; `Err` says why it failed.
pub(crate) async fn probe(
    probe: &HealthProbe,
    timeout: Duration,
    ctx: &ProbeEnv,
) -> Result<(), String> {
    match probe {
        HealthProbe::Http {
            port,
            path,
            status,
            body,
        } => {
            let url = format!("http://127.0.0.1:{port}{path}");
            let work = async {
                let resp = ctx
                    .client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let got = resp.status().as_u16();
                if got != *status {
                    return Err(format!("GET {url}: status {got}, expected {status}"));
                }
                if let Some(want) = body {
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
                    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_LIMIT)]);
                    if !text.contains(want.as_str()) {
                        return Err(format!("GET {url}: the body does not contain {want:?}"));
                    }
                }
                Ok(())
            };
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| Err(format!("GET {url}: no answer within {timeout:?}")))
        }
        HealthProbe::Tcp { port } => {
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect(("127.0.0.1", *port)),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("connect to 127.0.0.1:{port}: {e}")),
                Err(_) => Err(format!(
                    "connect to 127.0.0.1:{port}: timed out after {timeout:?}"
                )),
            }
        }
        HealthProbe::Exec { argv } => {
            let mut cmd = env::command(argv, &ctx.release_dir, &ctx.env)?;
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot run {:?}: {e}", argv.first()))?;
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(s)) if s.success() => Ok(()),
                Ok(Ok(s)) => Err(format!(
                    "{} {}",
                    argv.first().map(String::as_str).unwrap_or(""),
                    super::supervisor::describe_exit(&s)
                )),
                Ok(Err(e)) => Err(format!("cannot wait for the check: {e}")),
                Err(_) => {
                    if let Some(pid) = child.id() {
                        signal_group(
                            Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
                            Signal::SIGKILL,
                        );
                    }
                    let _ = child.wait().await;
                    Err(format!("the check ran longer than {timeout:?}"))
                }
            }
        }
    }
}

/// Receives the health whenever a probe is done (the caller notices changes).
pub(crate) type HealthSink = Arc<dyn Fn(Health) + Send + Sync>;

/// A running health check.
#[derive(Debug)]
pub(crate) struct Checker {
    stop: CancellationToken,
}

impl Checker {
    /// Probes every `spec.interval_ms` until stopped (or `detach` is cancelled).
    pub(crate) fn start(
        spec: HealthSpec,
        ctx: ProbeEnv,
        sink: HealthSink,
        detach: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Checker {
        let stop = detach.child_token();
        let token = stop.clone();
        tracker.spawn(async move {
            let interval = Duration::from_millis(spec.interval_ms.max(10));
            let timeout = Duration::from_millis(spec.timeout_ms.max(1));
            let mut tally = Tally::default();
            // Startup: probe soon and often (20 ms, doubling up to the interval) so a
            // service that is up is seen healthy at once; failures during the grace a
            // service would have had with the plain schedule (interval × unhealthy
            // threshold) do not count, so slow starters are not called unhealthy early.
            let started = tokio::time::Instant::now();
            let grace = interval * spec.unhealthy_threshold.max(1);
            let mut early = Some(Duration::from_millis(20).min(interval));
            loop {
                let wait = early.unwrap_or(interval);
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                let result = tokio::select! {
                    _ = token.cancelled() => return,
                    r = probe(&spec.probe, timeout, &ctx) => r,
                };
                if let Err(why) = &result {
                    tracing::debug!(reason = %why, "health probe failed");
                }
                if let Some(w) = early {
                    if result.is_ok() || started.elapsed() >= grace {
                        early = None;
                    } else {
                        early = Some((w * 2).min(interval));
                        continue;
                    }
                }
                sink(tally.record(result.is_ok(), &spec));
            }
        });
        Checker { stop }
    }

    /// Stops probing.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The HTTP client for probes: loopback only, so no proxy.
pub(crate) fn client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .user_agent(format!(
            "drover-agent/{} (health check)",
            drover_proto::VERSION
        ))
        .build()
        .map_err(|e| format!("cannot build the HTTP client for health checks: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(healthy: u32, unhealthy: u32) -> HealthSpec {
        HealthSpec {
            probe: HealthProbe::Tcp { port: 1 },
            interval_ms: 10,
            timeout_ms: 10,
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
        }
    }

    #[test]
    fn thresholds_make_the_health() {
        let s = spec(2, 3);
        let mut t = Tally::default();
        assert_eq!(t.record(true, &s), Health::Unknown);
        assert_eq!(t.record(true, &s), Health::Healthy);
        assert_eq!(t.record(false, &s), Health::Healthy);
        assert_eq!(t.record(false, &s), Health::Healthy);
        assert_eq!(t.record(true, &s), Health::Healthy);
        for _ in 0..2 {
            assert_eq!(t.record(false, &s), Health::Healthy);
        }
        assert_eq!(t.record(false, &s), Health::Unhealthy);
        assert_eq!(t.record(true, &s), Health::Unhealthy);
        assert_eq!(t.record(true, &s), Health::Healthy);
        // Zero thresholds count as one.
        let mut t = Tally::default();
        assert_eq!(t.record(false, &spec(0, 0)), Health::Unhealthy);
    }

    #[tokio::test]
    async fn tcp_and_exec_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ctx = ProbeEnv {
            release_dir: std::env::temp_dir(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            client: client().expect("client"),
        };
        let t = Duration::from_secs(2);
        assert!(probe(&HealthProbe::Tcp { port }, t, &ctx).await.is_ok());
        drop(listener);
        assert!(probe(&HealthProbe::Tcp { port }, t, &ctx).await.is_err());
        let ok = HealthProbe::Exec {
            argv: vec!["true".into()],
        };
        assert!(probe(&ok, t, &ctx).await.is_ok());
        let bad = HealthProbe::Exec {
            argv: vec!["sh".into(), "-c".into(), "exit 2".into()],
        };
        let e = probe(&bad, t, &ctx).await.expect_err("fails");
        assert!(e.contains("exited with code 2"), "{e}");
        let slow = HealthProbe::Exec {
            argv: vec!["sleep".into(), "5".into()],
        };
        let e = probe(&slow, Duration::from_millis(100), &ctx)
            .await
            .expect_err("times out");
        assert!(e.contains("longer than"), "{e}");
    }
}
