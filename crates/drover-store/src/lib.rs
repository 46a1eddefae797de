//! Persistence for the drover controller: SQLite (embedded default) or PostgreSQL.
//!
//! **API boundary.** The controller talks to [`Store`] only. One SQL code path serves both
//! databases (sqlx's `Any` driver with `$N` placeholders, times as Unix milliseconds,
//! JSON as text); the few statements that must differ are chosen by [`Dialect`].
//! Migrations live per dialect under `migrations/` and run at [`Store::connect`].
//!
//! **Invariant.** The store is the truth: every state change the controller makes goes
//! through one of these methods, inside a transaction where it touches several rows, so a
//! controller killed at any instant resumes from what is here.

/// `format!` for SQL text built from constants of this crate (column lists, clauses
/// chosen by code), never from input: input always goes through `bind`.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

mod artifacts;
mod automation;
mod error;
mod events;
mod executions;
mod generators;
mod host_changes;
mod host_rows;
mod hosts;
mod instances;
mod inventory;
mod lb;
mod models;
mod notify;
mod providers;
mod rollouts;
mod rows;
mod tokens;
mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use artifacts::ArtifactInfo;
pub use automation::{
    Batch, ClaimedAction, Enforcement, EnforcementRow, KvQuery, KvRow, KvWrite, NewAction, PackRow,
    PackWrite, TimerRow, WebhookRow, WorkflowWrite,
};
pub use error::StoreError;
pub use events::{EventFilter, EventOrder, NewEvent};
pub use executions::{
    DispatchedCommand, ExecutionFilter, NewExecution, NewTarget, OutputAccepted, Settled,
};
pub use generators::{GenerateItem, GeneratorOutput};
pub use host_rows::HostLabels;
pub use hosts::{Enrolled, HeartbeatOutcome};
pub use instances::{InstanceQuery, LiveRow};
pub use inventory::{INSTANCE_ID_LABEL, SyncOutcome};
pub use lb::DrainRow;
pub use models::{ModelVersion, StoredFile};
pub use notify::{Notice, Notifier};
pub use rollouts::{
    InstanceRow, NewRollout, NewRolloutInstance, NewStep, NewUnit, RolloutDetail, RolloutRow,
    StepRow, UnitInstance, UnitRow,
};
pub use tokens::{NewToken, TokenRecord};

/// Result type of every store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite file (WAL mode).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Dialect {
    /// Name for logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// Statement that opens a write transaction. SQLite takes the write lock at once so
    /// that concurrent writers queue on `busy_timeout` instead of failing mid-transaction.
    fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Parameters per statement of a batched write (a multi-row `INSERT`, an `IN` list).
    /// PostgreSQL gains from big batches (fewer round trips); sqlx's SQLite driver binds
    /// `$N` parameters in time that grows with their number, so smaller ones are faster.
    fn batch_params(self) -> usize {
        match self {
            Dialect::Sqlite => 500,
            Dialect::Postgres => 16_000,
        }
    }

    /// Rows of `params` parameters each per batched statement (at least one).
    pub(crate) fn batch_rows(self, params: usize) -> usize {
        (self.batch_params() / params.max(1)).max(1)
    }

    /// Suffix of a `SELECT` that locks the rows it reads until the transaction ends, so
    /// that concurrent writers of those rows (another controller) queue behind it and
    /// the statements after it see their changes. SQLite needs none: `BEGIN IMMEDIATE`
    /// already serialises writers.
    fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    notifier: Notifier,
    /// SQLite: this process's writers take turns (see [`write`]).
    turn: Option<write::WriteTurn>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens the database at `url` (`sqlite://PATH` or `postgres://…`), creating an SQLite
    /// file if needed, and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::Config(format!(
                "unsupported database URL `{}`: expected sqlite://PATH or postgres://…",
                redact_url(url)
            )));
        };
        let url = match dialect {
            Dialect::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Config(format!("bad database URL: {e}")))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 4,
                Dialect::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.execute(
                            "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        match dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        let notifier = Notifier::start(dialect, &url).await?;
        Ok(Store {
            pool,
            dialect,
            notifier,
            turn: (dialect == Dialect::Sqlite).then(Default::default),
        })
    }

    /// The database kind.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Change notifications (in-process; across controllers through PostgreSQL
    /// LISTEN/NOTIFY).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Reads a value from the `meta` table.
    pub async fn meta_get(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.0))
    }

    /// Sets `key` to `value` only if it is not set yet; returns true if this call set it.
    /// Used to make first-start bootstrap happen exactly once, even with several
    /// controllers starting together.
    pub async fn meta_set_once(&self, key: &str, value: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Closes every connection (waits for queries in flight).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A connection for one autocommit write (in this process's turn, with SQLite).
    async fn writer(&self) -> Result<write::WriteConn> {
        Ok(write::WriteConn::acquire(&self.pool, self.turn.as_ref()).await?)
    }

    async fn begin_write(&self) -> Result<write::WriteTx> {
        Ok(
            write::WriteTx::begin(&self.pool, self.dialect.begin_write(), self.turn.as_ref())
                .await?,
        )
    }
}

/// Hides the password of a database URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
