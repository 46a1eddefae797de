//! Registered webhooks: a name and its own secret (a token, or an HMAC key), encrypted
//! by the caller.

use drover_proto::events::types;
use serde_json::json;
use sqlx::Row;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::now_ms;
use crate::{Result, Store};

/// A registered webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRow {
    /// Name: `POST /api/v1/webhooks/{name}`.
    pub name: String,
    /// `token` (header `X-Drover-Webhook-Token`) or `hmac` (header
    /// `X-Hub-Signature-256: sha256=<hex>` over the body).
    pub auth: String,
    /// The secret, encrypted.
    pub secret: String,
    /// When (Unix ms).
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
}

impl Store {
    /// Registers (or replaces) a webhook, with a `webhook.changed` event (no secret).
    pub async fn put_webhook(
        &self,
        name: &str,
        auth: &str,
        secret: &str,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhooks (name, auth, secret, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET auth = $2, \
             secret = $3, created_at = $4, created_by = $5",
        )
        .bind(name)
        .bind(auth)
        .bind(secret)
        .bind(now_ms())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                types::WEBHOOK_CHANGED,
                actor,
                json!({ "webhook": name, "auth": auth, "change": "registered" }),
            ),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        Ok(())
    }

    /// Deletes a webhook; false when there was none.
    pub async fn delete_webhook(&self, name: &str, actor: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM webhooks WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(
                types::WEBHOOK_CHANGED,
                actor,
                json!({ "webhook": name, "change": "deleted" }),
            ),
        )
        .await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        Ok(true)
    }

    /// One webhook.
    pub async fn get_webhook(&self, name: &str) -> Result<Option<WebhookRow>> {
        Ok(self
            .list_webhooks()
            .await?
            .into_iter()
            .find(|w| w.name == name))
    }

    /// Every webhook, by name.
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookRow>> {
        let rows = sqlx::query(
            "SELECT name, auth, secret, created_at, created_by FROM webhooks ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook).collect()
    }
}

fn webhook(r: &sqlx::any::AnyRow) -> Result<WebhookRow> {
    Ok(WebhookRow {
        name: r.try_get("name")?,
        auth: r.try_get("auth")?,
        secret: r.try_get("secret")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
    })
}
