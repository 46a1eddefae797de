//! Installed packs and rule switches. Any change bumps `catalog_epoch`, which tells every
//! controller to reload its decoded catalog.

use drover_proto::events::types;
use serde_json::json;
use sqlx::Row;

use super::bump;
use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::{json, now_ms, to_json};
use crate::{Result, Store};

/// A pack to install: its identity and its files as installed.
#[derive(Debug, Clone)]
pub struct PackWrite {
    /// Pack name (its `ref`).
    pub name: String,
    /// Version from `pack.yaml`.
    pub version: String,
    /// Description from `pack.yaml`.
    pub description: String,
    /// Hash of the files (re-installing the same content changes nothing).
    pub content_hash: String,
    /// The files, `[{path, text}]`.
    pub files: serde_json::Value,
}

/// An installed pack.
#[derive(Debug, Clone)]
pub struct PackRow {
    /// Pack name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Description.
    pub description: String,
    /// Hash of the files.
    pub content_hash: String,
    /// The files, `[{path, text}]`.
    pub files: serde_json::Value,
    /// When (Unix ms).
    pub installed_at: i64,
    /// By whom.
    pub installed_by: String,
}

impl Store {
    /// Installs or replaces a pack in one transaction, with a `pack.installed` event.
    /// Returns the replaced version, or `Ok(None)` for a new pack. Installing the same
    /// content again changes nothing and returns the same version.
    pub async fn install_pack(&self, pack: &PackWrite, actor: &str) -> Result<Option<String>> {
        let mut tx = self.begin_write().await?;
        let previous: Option<(String, String)> = sqlx::query_as(sql!(
            "SELECT version, content_hash FROM packs WHERE name = $1{}",
            self.dialect.for_update()
        ))
        .bind(&pack.name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((version, hash)) = &previous
            && *hash == pack.content_hash
        {
            return Ok(Some(version.clone()));
        }
        sqlx::query(
            "INSERT INTO packs (name, version, description, content_hash, files, installed_at, \
             installed_by) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE SET \
             version = $2, description = $3, content_hash = $4, files = $5, installed_at = $6, \
             installed_by = $7",
        )
        .bind(&pack.name)
        .bind(&pack.version)
        .bind(&pack.description)
        .bind(&pack.content_hash)
        .bind(to_json(&pack.files))
        .bind(now_ms())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, "catalog_epoch").await?;
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                types::PACK_INSTALLED,
                actor,
                json!({
                    "pack": pack.name,
                    "version": pack.version,
                    "previous_version": previous.as_ref().map(|p| &p.0),
                    "content_hash": pack.content_hash,
                }),
            ),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        self.notifier.publish(Notice::Catalog);
        Ok(previous.map(|p| p.0))
    }

    /// Removes a pack (and the switches of its rules), with a `pack.removed` event.
    /// Returns false when no such pack was installed.
    pub async fn remove_pack(&self, name: &str, actor: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM packs WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM rule_overrides WHERE rule_ref LIKE $1")
            .bind(format!("{name}.%"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM timers WHERE rule_ref LIKE $1")
            .bind(format!("{name}.%"))
            .execute(&mut *tx)
            .await?;
        bump(&mut tx, "catalog_epoch").await?;
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(types::PACK_REMOVED, actor, json!({ "pack": name })),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        self.notifier.publish(Notice::Catalog);
        Ok(true)
    }

    /// Every installed pack, by name.
    pub async fn list_packs(&self) -> Result<Vec<PackRow>> {
        let rows = sqlx::query(
            "SELECT name, version, description, content_hash, files, installed_at, \
             installed_by FROM packs ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let files: String = r.try_get("files")?;
                Ok(PackRow {
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    description: r.try_get("description")?,
                    content_hash: r.try_get("content_hash")?,
                    files: json("packs", &files)?,
                    installed_at: r.try_get("installed_at")?,
                    installed_by: r.try_get("installed_by")?,
                })
            })
            .collect()
    }

    /// The catalog generation: it grows with every pack or rule switch change.
    pub async fn catalog_epoch(&self) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        super::counter(&mut conn, "catalog_epoch").await
    }

    /// Turns a rule on or off (overriding its file), with a `rule.enabled` or
    /// `rule.disabled` event.
    pub async fn set_rule_enabled(&self, rule_ref: &str, enabled: bool, actor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO rule_overrides (rule_ref, enabled, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (rule_ref) DO UPDATE SET enabled = $2, \
             updated_at = $3, updated_by = $4",
        )
        .bind(rule_ref)
        .bind(i64::from(enabled))
        .bind(now_ms())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, "catalog_epoch").await?;
        let kind = if enabled {
            types::RULE_ENABLED
        } else {
            types::RULE_DISABLED
        };
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(kind, actor, json!({ "rule": rule_ref })),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        self.notifier.publish(Notice::Catalog);
        Ok(())
    }

    /// Rule switches set with `drover rules enable|disable`: rule ref → enabled.
    pub async fn rule_overrides(&self) -> Result<std::collections::HashMap<String, bool>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT rule_ref, enabled FROM rule_overrides")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(r, e)| (r, e != 0)).collect())
    }
}
