//! Reporting one command to the controller: one ordered sender per command that delivers
//! `Started`, then every output batch, then `Finished`, each retried with backoff until
//! the controller accepts it, so nothing is lost or reordered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use drover_proto::agent::{CommandResult, CommandUpdate, OutputBatch};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::channel::{Channel, ChannelError};
use crate::output::{LINGER, MAX_BATCH, OutputBuffer};

/// Time limit of the one attempt made for each message once the agent shuts down.
pub(crate) const LAST_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where command reports go (the controller, or a test double).
pub(crate) trait Reporter: Send + Sync + 'static {
    /// Sends one batch of output of command `id`.
    fn output(
        &self,
        id: &str,
        batch: &OutputBatch,
    ) -> impl Future<Output = Result<(), ChannelError>> + Send;

    /// Sends a status update of command `id`.
    fn status(
        &self,
        id: &str,
        update: &CommandUpdate,
    ) -> impl Future<Output = Result<(), ChannelError>> + Send;
}

impl Reporter for Channel {
    fn output(
        &self,
        id: &str,
        batch: &OutputBatch,
    ) -> impl Future<Output = Result<(), ChannelError>> + Send {
        Channel::output(self, id, batch)
    }

    fn status(
        &self,
        id: &str,
        update: &CommandUpdate,
    ) -> impl Future<Output = Result<(), ChannelError>> + Send {
        Channel::status(self, id, update)
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The controller accepted it.
    Accepted,
    /// The controller rejected it for good (4xx other than 401, 408, 429).
    Refused,
    /// The agent is shutting down and its last attempt failed.
    Abandoned,
}

/// Tries `attempt` until the controller accepts it, with backoff between failures. Once
/// `shutdown` is cancelled, makes one last attempt (bounded in time) and gives up.
pub(crate) async fn deliver<F, Fut>(
    what: &str,
    id: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Delivery
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ChannelError>>,
{
    let mut backoff = Backoff::new();
    loop {
        let last = shutdown.is_cancelled();
        let result = if last {
            tokio::time::timeout(LAST_ATTEMPT_TIMEOUT, attempt())
                .await
                .unwrap_or_else(|_| Err(ChannelError::Transport("timed out".into())))
        } else {
            attempt().await
        };
        match result {
            Ok(()) => return Delivery::Accepted,
            Err(e) if !e.is_retryable() => {
                tracing::error!(command = id, what, error = %e, "the controller refused a report; dropping it");
                return Delivery::Refused;
            }
            Err(e) => {
                if last {
                    tracing::warn!(command = id, what, error = %e, "agent shutting down; report not delivered");
                    return Delivery::Abandoned;
                }
                tracing::debug!(command = id, what, error = %e, "report not delivered; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// The ordered sender of one command: `Started{pid}` once `started` gives one (a pid, or
/// `None` for work the agent does itself; skipped if it is dropped: the spawn failed), then every batch of `output` until it is closed
/// and empty, then `Finished` with the result from `result`.
pub(crate) async fn send_in_order<R: Reporter>(
    reporter: Arc<R>,
    id: String,
    started: oneshot::Receiver<Option<u32>>,
    output: Arc<OutputBuffer>,
    result: oneshot::Receiver<CommandResult>,
    shutdown: CancellationToken,
) -> Delivery {
    if let Ok(pid) = started.await {
        let update = CommandUpdate::Started { pid };
        let d = deliver("started", &id, &shutdown, || reporter.status(&id, &update)).await;
        if d == Delivery::Abandoned {
            return d;
        }
    }
    while let Some(chunks) = output.next_batch(MAX_BATCH, LINGER).await {
        let bytes: usize = chunks.iter().map(|c| c.data.len()).sum();
        let batch = OutputBatch { chunks };
        let d = deliver("output", &id, &shutdown, || reporter.output(&id, &batch)).await;
        if d == Delivery::Abandoned {
            return d;
        }
        output.acknowledge(bytes);
    }
    let Ok(result) = result.await else {
        return Delivery::Abandoned;
    };
    send_finished(&*reporter, &id, result, &shutdown).await
}

/// Delivers `Finished{result}` for `id` (also used to answer a re-delivered id).
pub(crate) async fn send_finished<R: Reporter>(
    reporter: &R,
    id: &str,
    result: CommandResult,
    shutdown: &CancellationToken,
) -> Delivery {
    let update = CommandUpdate::Finished { result };
    deliver("finished", id, shutdown, || reporter.status(id, &update)).await
}

#[cfg(test)]
pub(crate) mod testing {
    //! A reporter that records what it was sent and can fail on purpose.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use drover_proto::agent::{OutputChunk, OutputStream};

    use super::*;

    /// One message a [`MemReporter`] accepted.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Sent {
        Output(Vec<OutputChunk>),
        Status(CommandUpdate),
    }

    /// Records accepted messages; refuses the first `fail_first` attempts with a
    /// retryable error.
    #[derive(Debug, Default)]
    pub(crate) struct MemReporter {
        pub(crate) sent: Mutex<Vec<Sent>>,
        pub(crate) fail_first: AtomicUsize,
        pub(crate) attempts: AtomicUsize,
    }

    impl MemReporter {
        fn attempt(&self) -> Result<(), ChannelError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let left = self.fail_first.load(Ordering::SeqCst);
            if left > 0 {
                self.fail_first.store(left - 1, Ordering::SeqCst);
                return Err(ChannelError::Server {
                    status: 503,
                    detail: "test".into(),
                });
            }
            Ok(())
        }

        pub(crate) fn sent(&self) -> Vec<Sent> {
            self.sent.lock().map(|s| s.clone()).unwrap_or_default()
        }

        /// All output chunks in the order they were accepted.
        pub(crate) fn chunks(&self) -> Vec<OutputChunk> {
            self.sent()
                .into_iter()
                .filter_map(|s| match s {
                    Sent::Output(c) => Some(c),
                    Sent::Status(_) => None,
                })
                .flatten()
                .collect()
        }

        /// The concatenated text of one stream.
        pub(crate) fn text(&self, stream: OutputStream) -> String {
            self.chunks()
                .into_iter()
                .filter(|c| c.stream == stream)
                .map(|c| c.data)
                .collect()
        }

        /// Status updates in order.
        pub(crate) fn statuses(&self) -> Vec<CommandUpdate> {
            self.sent()
                .into_iter()
                .filter_map(|s| match s {
                    Sent::Status(u) => Some(u),
                    Sent::Output(_) => None,
                })
                .collect()
        }
    }

    impl Reporter for MemReporter {
        async fn output(&self, _id: &str, batch: &OutputBatch) -> Result<(), ChannelError> {
            self.attempt()?;
            if let Ok(mut s) = self.sent.lock() {
                s.push(Sent::Output(batch.chunks.clone()));
            }
            Ok(())
        }

        async fn status(&self, _id: &str, update: &CommandUpdate) -> Result<(), ChannelError> {
            self.attempt()?;
            if let Ok(mut s) = self.sent.lock() {
                s.push(Sent::Status(update.clone()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use drover_proto::agent::{CommandOutcome, OutputStream};

    use super::testing::{MemReporter, Sent};
    use super::*;

    fn result(chunks: u64) -> CommandResult {
        CommandResult {
            outcome: CommandOutcome::Ok,
            exit_code: Some(0),
            signal: None,
            duration_ms: 1,
            error: None,
            chunks,
        }
    }

    #[tokio::test]
    async fn started_output_finished_in_order_despite_failures() {
        let rep = Arc::new(MemReporter::default());
        rep.fail_first.store(3, Ordering::SeqCst);
        let buf = OutputBuffer::new(1 << 20);
        let (stx, srx) = oneshot::channel();
        let (rtx, rrx) = oneshot::channel();
        let task = tokio::spawn(send_in_order(
            rep.clone(),
            "c1".into(),
            srx,
            buf.clone(),
            rrx,
            CancellationToken::new(),
        ));
        let _ = stx.send(Some(42));
        buf.push(OutputStream::Stdout, "a\n".into());
        buf.push(OutputStream::Stderr, "b\n".into());
        buf.close();
        let _ = rtx.send(result(2));
        assert_eq!(task.await.expect("join"), Delivery::Accepted);
        let sent = rep.sent();
        assert_eq!(
            sent.first(),
            Some(&Sent::Status(CommandUpdate::Started { pid: Some(42) }))
        );
        assert_eq!(
            sent.last(),
            Some(&Sent::Status(CommandUpdate::Finished { result: result(2) }))
        );
        let seqs: Vec<u64> = rep.chunks().iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![0, 1]);
        assert!(rep.attempts.load(Ordering::SeqCst) >= sent.len() + 3);
    }

    #[tokio::test]
    async fn shutdown_makes_one_last_attempt_then_gives_up() {
        let rep = MemReporter::default();
        rep.fail_first.store(usize::MAX, Ordering::SeqCst);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let d = send_finished(&rep, "c1", result(0), &shutdown).await;
        assert_eq!(d, Delivery::Abandoned);
        assert_eq!(rep.attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_rejection_is_final() {
        let shutdown = CancellationToken::new();
        let mut n = 0;
        let d = deliver("x", "c1", &shutdown, || {
            n += 1;
            async {
                Err(ChannelError::Rejected {
                    status: 400,
                    detail: "bad".into(),
                })
            }
        })
        .await;
        assert_eq!(d, Delivery::Refused);
        assert_eq!(n, 1);
    }
}
