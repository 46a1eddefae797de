//! Write transactions. SQLite has one writer: a second `BEGIN IMMEDIATE` waits in
//! SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between tries, so two writers of
//! one controller that meet lose milliseconds each time. Within a process the store
//! therefore queues its SQLite write transactions on an async mutex first: they take
//! turns without sleeping, and the busy handler is left for other processes.
//! PostgreSQL needs no turn.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::AnyConnection;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The turn of this process's SQLite writers.
pub(crate) type WriteTurn = Arc<Mutex<()>>;

/// An open write transaction, holding the writers' turn (SQLite) until it ends.
/// Dereferences to the connection, so queries run on `&mut *tx`. Dropped without
/// [`WriteTx::commit`], it rolls back.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Opens a transaction with `begin`, after waiting for the turn when there is one.
    pub(crate) async fn begin(
        pool: &sqlx::AnyPool,
        begin: &'static str,
        turn: Option<&WriteTurn>,
    ) -> Result<WriteTx, sqlx::Error> {
        let turn = match turn {
            Some(t) => Some(t.clone().lock_owned().await),
            None => None,
        };
        let tx = pool.begin_with(begin).await?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// Commits, then gives the turn to the next writer.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// A connection for one autocommit write statement, holding the writers' turn
/// (SQLite) while it runs. Dereferences to the connection.
pub(crate) struct WriteConn {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteConn {
    /// Takes the turn when there is one, then a connection.
    pub(crate) async fn acquire(
        pool: &sqlx::AnyPool,
        turn: Option<&WriteTurn>,
    ) -> Result<WriteConn, sqlx::Error> {
        let turn = match turn {
            Some(t) => Some(t.clone().lock_owned().await),
            None => None,
        };
        Ok(WriteConn {
            conn: pool.acquire().await?,
            _turn: turn,
        })
    }
}

impl Deref for WriteConn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}
