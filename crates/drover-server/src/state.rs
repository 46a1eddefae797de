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
}
