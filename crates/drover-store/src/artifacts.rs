//! The controller's content-addressed artifact store: metadata here, bytes on disk (the
//! server writes `<data dir>/artifacts/<sha256>.tar.gz`).

use chrono::{DateTime, Utc};
use drover_proto::events::types;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{now_ms, time};
use crate::{Result, Store};

/// A stored artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactInfo {
    /// Hex SHA-256 of the bytes: the artifact's identity.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// File name given at upload (for people; not an identity).
    pub name: String,
    /// Who uploaded it first.
    pub uploaded_by: String,
    /// When it was first uploaded.
    pub created_at: DateTime<Utc>,
}

fn artifact(row: &AnyRow) -> Result<ArtifactInfo> {
    let size: i64 = row.try_get("size")?;
    Ok(ArtifactInfo {
        sha256: row.try_get("sha256")?,
        size: u64::try_from(size).unwrap_or(0),
        name: row.try_get("name")?,
        uploaded_by: row.try_get("uploaded_by")?,
        created_at: time(row.try_get("created_at")?),
    })
}

impl Store {
    /// Records an uploaded artifact with an `artifact.pushed` event. Pushing the same
    /// bytes again changes nothing and returns `(existing, false)`.
    pub async fn record_artifact(
        &self,
        sha256: &str,
        size: u64,
        name: &str,
        actor: &str,
    ) -> Result<(ArtifactInfo, bool)> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO artifacts (sha256, size, name, uploaded_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(name)
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let mut event = None;
        if inserted {
            event = Some(
                append_in(
                    &mut tx,
                    self.dialect,
                    &NewEvent::new(
                        types::ARTIFACT_PUSHED,
                        actor,
                        serde_json::json!({ "sha256": sha256, "size": size, "name": name }),
                    ),
                )
                .await?,
            );
        }
        let row = sqlx::query("SELECT * FROM artifacts WHERE sha256 = $1")
            .bind(sha256)
            .fetch_one(&mut *tx)
            .await?;
        let info = artifact(&row)?;
        tx.commit().await?;
        if let Some(id) = event {
            self.notifier.publish(Notice::Event { id });
        }
        Ok((info, inserted))
    }

    /// One artifact.
    pub async fn get_artifact(&self, sha256: &str) -> Result<Option<ArtifactInfo>> {
        let row = sqlx::query("SELECT * FROM artifacts WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(artifact).transpose()
    }

    /// Artifacts newest first (then by digest), after the cursor `(created_at ms,
    /// sha256)` of the previous page, at most `limit`.
    pub async fn artifacts_page(
        &self,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<ArtifactInfo>> {
        let rows = match after {
            None => {
                sqlx::query(sql!(
                    "SELECT * FROM artifacts ORDER BY created_at DESC, sha256 LIMIT {limit}"
                ))
                .fetch_all(&self.pool)
                .await?
            }
            Some((ms, sha)) => {
                sqlx::query(sql!(
                    "SELECT * FROM artifacts WHERE created_at <= $1 AND (created_at < $2 \
                     OR (created_at = $3 AND sha256 > $4)) \
                     ORDER BY created_at DESC, sha256 LIMIT {limit}"
                ))
                .bind(ms)
                .bind(ms)
                .bind(ms)
                .bind(sha.to_string())
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(artifact).collect()
    }

    /// Every artifact, newest first.
    pub async fn list_artifacts(&self) -> Result<Vec<ArtifactInfo>> {
        let rows = sqlx::query("SELECT * FROM artifacts ORDER BY created_at DESC, sha256")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(artifact).collect()
    }
}
