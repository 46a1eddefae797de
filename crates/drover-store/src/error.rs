//! Store errors.

use thiserror::Error;

/// What can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database URL or options are unusable.
    #[error("store configuration: {0}")]
    Config(String),
    /// The database refused or failed a statement.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A row holds something this version cannot read (e.g. corrupt JSON).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table the row is in.
        table: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No such thing (a host by that name or id…).
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
}
