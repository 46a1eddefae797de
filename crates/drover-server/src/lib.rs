//! The drover controller: HTTP API, agent hub, run executor, background monitors.
//!
//! **API boundary.** [`start`] is the only entry point; the binary and the tests call it.
//! Only this crate knows HTTP on the server side. All state lives in the store
//! ([`drover_store::Store`]); what this crate keeps in memory (subscriptions, open
//! long-polls) is rebuilt from the store after a restart.

mod api;
mod applied;
mod auth;
mod automation;
mod bootstrap;
mod error;
mod extract;
mod generators;
pub mod inventory;
mod monitor;
mod rollout;
mod runners;
mod state;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use drover_store::{NewEvent, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use bootstrap::Bootstrap;
use state::AppState;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Database URL; `None` means the SQLite file `drover.db` in `data_dir`.
    pub db_url: Option<String>,
    /// Directory for the SQLite database and other local files.
    pub data_dir: PathBuf,
    /// A host is marked down after this long without a heartbeat.
    pub down_after: Duration,
    /// Heartbeat interval asked of agents.
    pub heartbeat_interval: Duration,
    /// Longest time a long-poll is held open.
    pub poll_max_wait: Duration,
    /// Largest request body accepted (larger ones get 413).
    pub max_body_bytes: usize,
    /// URL agents use to reach this controller (artifact downloads); default
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    /// Key file that seals datastore secrets; default `secrets.key` in `data_dir`
    /// (created at first start). Controllers sharing a database share this file.
    pub secrets_key_file: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults for everything but the listen address and data dir.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> ServerConfig {
        ServerConfig {
            listen,
            db_url: None,
            data_dir,
            down_after: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(5),
            poll_max_wait: Duration::from_secs(30),
            max_body_bytes: 4 * 1024 * 1024,
            public_url: None,
            secrets_key_file: None,
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.db_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("drover.db").display()))
    }
}

/// A running controller.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Tokens created at first start (`None` on later starts): shown once, never stored.
    pub bootstrap: Option<Bootstrap>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Waits until the controller has shut down (after `shutdown` was cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("controller task panicked")?
    }
}

/// Opens the store (running migrations), creates the first tokens on first start, binds
/// the listener and serves until `shutdown` is cancelled. In-flight requests finish
/// before [`Server::wait`] returns.
pub async fn start(config: ServerConfig, shutdown: CancellationToken) -> anyhow::Result<Server> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let url = config.database_url();
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("cannot open store {}", drover_store::redact_url(&url)))?;
    let bootstrap = bootstrap::first_start(&store).await?;
    let key_file = config
        .secrets_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("secrets.key"));
    let secrets = Arc::new(automation::secrets::SecretBox::open_or_create(&key_file)?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    store
        .append_event(NewEvent::new(
            drover_proto::events::types::CONTROLLER_STARTED,
            "system",
            serde_json::json!({
                "version": drover_proto::VERSION,
                "store": store.dialect().as_str(),
                "listen": addr.to_string(),
            }),
        ))
        .await?;
    let mut config = config;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{addr}"));
    }
    let state = Arc::new(AppState {
        store: store.clone(),
        config: config.clone(),
        shutdown: shutdown.clone(),
        reconciler: Default::default(),
        generators: Default::default(),
        automation: Default::default(),
        applied: Default::default(),
        secrets,
    });
    monitor::spawn(state.clone());
    generators::spawn(state.clone());
    inventory::sync::spawn(state.clone());
    automation::spawn(state.clone());
    let app = api::router(state.clone()).merge(web::router(state.clone()));
    tracing::info!(%addr, store = store.dialect().as_str(), "controller listening");
    // Small writes (SSE events, long-poll answers) must leave at once: without
    // TCP_NODELAY, Nagle's algorithm waits for the peer's delayed ACK (40 ms on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("HTTP server failed")?;
        store.close().await;
        tracing::info!("controller stopped");
        Ok(())
    });
    Ok(Server {
        addr,
        bootstrap,
        task,
    })
}
