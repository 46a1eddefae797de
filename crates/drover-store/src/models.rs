//! Applied model versions: the raw files as the user wrote them, with their content
//! hash, author and message (`drover model history`, `drover model diff A B`).

use chrono::{DateTime, Utc};
use drover_proto::events::types;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{json, now_ms, time, to_json};
use crate::{Result, Store};

/// One file of a stored model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredFile {
    /// Path relative to the model directory.
    pub path: String,
    /// Content.
    pub text: String,
}

/// A stored model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelVersion {
    /// Version number, from 1.
    pub id: i64,
    /// Content hash of the model.
    pub content_hash: String,
    /// Who applied it.
    pub author: String,
    /// Why.
    pub message: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The files; empty in listings.
    #[serde(default)]
    pub files: Vec<StoredFile>,
}

impl ModelVersion {
    /// Its files as `(path, text)`.
    pub fn file_pairs(&self) -> Vec<(&str, &str)> {
        self.files
            .iter()
            .map(|f| (f.path.as_str(), f.text.as_str()))
            .collect()
    }
}

fn version(row: &AnyRow, with_files: bool) -> Result<ModelVersion> {
    let files = if with_files {
        let text: String = row.try_get("files")?;
        json("model_versions", &text)?
    } else {
        Vec::new()
    };
    Ok(ModelVersion {
        id: row.try_get("id")?,
        content_hash: row.try_get("content_hash")?,
        author: row.try_get("author")?,
        message: row.try_get("message")?,
        created_at: time(row.try_get("created_at")?),
        files,
    })
}

impl Store {
    /// Stores a model version with a `model.applied` event.
    pub async fn add_model_version(
        &self,
        content_hash: &str,
        author: &str,
        message: &str,
        files: &[StoredFile],
    ) -> Result<ModelVersion> {
        let mut tx = self.begin_write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO model_versions (content_hash, author, message, files, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(content_hash)
        .bind(author)
        .bind(message)
        .bind(to_json(&files))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let event = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                types::MODEL_APPLIED,
                author,
                serde_json::json!({ "version": id, "content_hash": content_hash, "message": message }),
            ),
        )
        .await?;
        let row = sqlx::query("SELECT * FROM model_versions WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let stored = version(&row, true)?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id: event });
        Ok(stored)
    }

    /// One version with its files.
    pub async fn get_model_version(&self, id: i64) -> Result<Option<ModelVersion>> {
        let row = sqlx::query("SELECT * FROM model_versions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| version(r, true)).transpose()
    }

    /// The newest version with its files.
    pub async fn current_model_version(&self) -> Result<Option<ModelVersion>> {
        let row = sqlx::query("SELECT * FROM model_versions ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| version(r, true)).transpose()
    }

    /// At most `limit` versions, newest first, without files: those older than
    /// `before` when given (keyset paging by version number).
    pub async fn list_model_versions(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ModelVersion>> {
        let rows = sqlx::query(
            "SELECT id, content_hash, author, message, created_at FROM model_versions \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| version(r, false)).collect()
    }
}
