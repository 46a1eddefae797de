//! Change notifications between the parts of a controller, and between controllers.
//!
//! Waiters (an agent's long-poll, an execution's output stream, `events --follow`) block
//! on a [`Notice`] instead of polling the database in a tight loop. Within one process the
//! notices go through a broadcast channel. With PostgreSQL they also travel through
//! `LISTEN/NOTIFY` on the channel `drover`, so an agent polling controller A wakes up
//! when controller B queues its work.
//!
//! Notices are hints, never the truth: a waiter that gets one re-reads the store, and
//! every waiter also re-reads on a timer, so a lost notice costs latency, not data.

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use drover_proto::executions::HostOutput;

use crate::{Dialect, Result};

/// PostgreSQL channel name.
const CHANNEL: &str = "drover";
/// Largest NOTIFY payload we send (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7900;

/// Something changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Commands (or cancels) were queued for a host.
    Commands {
        /// The host whose agent should poll again.
        host_id: String,
    },
    /// A host changed status.
    Host {
        /// The host.
        host_id: String,
    },
    /// New output of an execution. The chunk rides along when it fits in a notice;
    /// otherwise readers fetch it from the store.
    Output {
        /// The execution.
        execution_id: String,
        /// The chunk, when small enough.
        chunk: Option<HostOutput>,
    },
    /// A target or the execution itself changed status.
    Execution {
        /// The execution.
        execution_id: String,
    },
    /// An event was appended.
    Event {
        /// Its id.
        id: i64,
    },
    /// Instances were drained or put back (generators render again).
    Drains {
        /// The new drain epoch.
        epoch: i64,
    },
    /// Packs or rule switches changed: reload the automation catalog.
    Catalog,
    /// Action executions were queued (the executor should claim them).
    Actions,
    /// A generator's output on a host was applied or failed.
    Generator {
        /// Generator name.
        generator: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// Id of the controller process that published it.
    origin: String,
    notice: Notice,
}

/// Publishes and delivers [`Notice`]s. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    local: broadcast::Sender<Notice>,
    remote: Option<mpsc::UnboundedSender<Notice>>,
}

impl Notifier {
    /// Starts the notifier; with PostgreSQL this opens a listening connection and a
    /// sending task.
    pub(crate) async fn start(dialect: Dialect, url: &str) -> Result<Notifier> {
        let (local, _) = broadcast::channel(8192);
        if dialect == Dialect::Sqlite {
            return Ok(Notifier {
                local,
                remote: None,
            });
        }
        let origin = uuid::Uuid::now_v7().to_string();
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        let forward = local.clone();
        let me = origin.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(msg)) => match serde_json::from_str::<Envelope>(msg.payload()) {
                        Ok(env) if env.origin != me => {
                            let _ = forward.send(env.notice);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "ignoring malformed notice"),
                    },
                    // The connection dropped and was re-established; notices sent in
                    // between are lost, which waiters cover by re-reading on a timer.
                    Ok(None) => tracing::warn!("notification connection to PostgreSQL lost"),
                    Err(e) => {
                        tracing::warn!(error = %e, "notification listener failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
        tokio::spawn(async move {
            while let Some(notice) = rx.recv().await {
                let payload = encode(&origin, notice);
                if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(&payload)
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "could not send notice to other controllers");
                }
            }
        });
        Ok(Notifier {
            local,
            remote: Some(tx),
        })
    }

    /// Tells every waiter, here and in other controllers.
    pub fn publish(&self, notice: Notice) {
        if let Some(remote) = &self.remote {
            let _ = remote.send(notice.clone());
        }
        let _ = self.local.send(notice);
    }

    /// A receiver of every notice published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.local.subscribe()
    }
}

/// Serialises a notice for NOTIFY, dropping an output chunk that would not fit.
fn encode(origin: &str, notice: Notice) -> String {
    let env = Envelope {
        origin: origin.to_string(),
        notice,
    };
    let text = serde_json::to_string(&env).unwrap_or_default();
    if text.len() <= MAX_PAYLOAD {
        return text;
    }
    let slim = match env.notice {
        Notice::Output { execution_id, .. } => Notice::Output {
            execution_id,
            chunk: None,
        },
        other => other,
    };
    serde_json::to_string(&Envelope {
        origin: env.origin,
        notice: slim,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::agent::OutputStream;

    #[test]
    fn large_output_notice_drops_chunk_to_fit() {
        let notice = Notice::Output {
            execution_id: "e".into(),
            chunk: Some(HostOutput {
                host_id: "h".into(),
                host_name: "n".into(),
                seq: 1,
                stream: OutputStream::Stdout,
                data: "x".repeat(20_000),
            }),
        };
        let text = encode("me", notice);
        assert!(text.len() <= MAX_PAYLOAD);
        let env: Envelope = serde_json::from_str(&text).expect("valid json");
        assert_eq!(
            env.notice,
            Notice::Output {
                execution_id: "e".into(),
                chunk: None
            }
        );
    }
}
