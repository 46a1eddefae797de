//! State shared by every request handler.

use drover_store::Store;
use tokio_util::sync::CancellationToken;

use crate::ServerConfig;

/// What handlers and monitors share.
pub(crate) struct AppState {
    /// The store (the truth).
    pub store: Store,
    /// Controller settings.
    pub config: ServerConfig,
    /// Cancelled at shutdown: long-polls and streams end when it is.
    pub shutdown: CancellationToken,
    /// `reconcile: auto` bookkeeping.
    pub reconciler: crate::rollout::Reconciler,
    /// Generator passes, one at a time.
    pub generators: crate::generators::Generators,
    /// The automation runtime's per-controller state.
    pub automation: crate::automation::Automation,
    /// The applied model, parsed once per version.
    pub applied: crate::applied::AppliedModel,
    /// Seals and opens datastore secrets.
    pub secrets: std::sync::Arc<crate::automation::secrets::SecretBox>,
}

impl AppState {
    /// The URL agents reach this controller at.
    pub fn public_url(&self) -> String {
        self.config
            .public_url
            .clone()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string()
    }
}
