//! The datastore: key/value pairs in the `system` and `user` scopes, with optional
//! expiry. Secret values arrive here already encrypted; the store never sees plaintext.

use drover_proto::events::types;
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::events::{NewEvent, append_in};
use crate::notify::Notice;
use crate::rows::now_ms;
use crate::{Result, Store};

/// A key to write.
#[derive(Debug, Clone)]
pub struct KvWrite {
    /// `system` or `user:<name>`.
    pub scope: String,
    /// Key name.
    pub name: String,
    /// The value; ciphertext when `secret`.
    pub value: String,
    /// Whether `value` is encrypted.
    pub secret: bool,
    /// When it expires (Unix ms).
    pub expires_at: Option<i64>,
}

/// A stored key.
#[derive(Debug, Clone, PartialEq)]
pub struct KvRow {
    /// `system` or `user:<name>`.
    pub scope: String,
    /// Key name.
    pub name: String,
    /// The value; ciphertext when `secret`.
    pub value: String,
    /// Whether `value` is encrypted.
    pub secret: bool,
    /// When it expires (Unix ms).
    pub expires_at: Option<i64>,
    /// Last change (Unix ms).
    pub updated_at: i64,
    /// Who changed it last.
    pub updated_by: String,
}

/// The counter [`Store::kv_version`] reads.
const KV_VERSION: &str = "kv_version";

/// Which keys [`Store::kv_page`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvQuery<'a> {
    /// Only these stored scopes (`system`, `user:<name>`); `None` for every scope.
    pub scopes: Option<&'a [String]>,
    /// Only names starting with this.
    pub prefix: &'a str,
    /// Only keys after this `(scope, name)`, in list order.
    pub after: Option<(&'a str, &'a str)>,
    /// At most this many keys.
    pub limit: Option<u32>,
}

fn kv_row(r: &AnyRow) -> Result<KvRow> {
    let secret: i64 = r.try_get("secret")?;
    Ok(KvRow {
        scope: r.try_get("scope")?,
        name: r.try_get("name")?,
        value: r.try_get("value")?,
        secret: secret != 0,
        expires_at: r.try_get("expires_at")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

const KV_COLUMNS: &str = "scope, name, value, secret, expires_at, updated_at, updated_by";

/// The event payload of a key change: never the value of a secret.
fn kv_payload(scope: &str, name: &str, value: Option<&str>, secret: bool) -> serde_json::Value {
    let mut p = json!({ "scope": scope, "name": name, "secret": secret });
    if let (Some(v), false) = (value, secret) {
        p["value"] = json!(v);
    }
    p
}

impl Store {
    /// Writes a key with a `kv.set` event.
    pub async fn kv_set(&self, w: &KvWrite, actor: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO kv (scope, name, value, secret, expires_at, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, name) DO UPDATE SET \
             value = $3, secret = $4, expires_at = $5, updated_at = $6, updated_by = $7",
        )
        .bind(&w.scope)
        .bind(&w.name)
        .bind(&w.value)
        .bind(i64::from(w.secret))
        .bind(w.expires_at)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let mut payload = kv_payload(&w.scope, &w.name, Some(&w.value), w.secret);
        payload["expires_at"] = json!(w.expires_at);
        let id = append_in(
            &mut tx,
            self.dialect,
            &NewEvent::new(types::KV_SET, actor, payload),
        )
        .await?;
        super::bump(&mut tx, KV_VERSION).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        Ok(())
    }

    /// One key, unless it is missing or expired.
    pub async fn kv_get(&self, scope: &str, name: &str) -> Result<Option<KvRow>> {
        let row = sqlx::query(sql!(
            "SELECT {KV_COLUMNS} FROM kv WHERE scope = $1 AND name = $2 \
             AND (expires_at IS NULL OR expires_at > $3)"
        ))
        .bind(scope)
        .bind(name)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(kv_row).transpose()
    }

    /// Keys of a scope (all scopes when `None`) whose names start with `prefix`, by
    /// scope and name; expired keys are left out.
    pub async fn kv_list(&self, scope: Option<&str>, prefix: &str) -> Result<Vec<KvRow>> {
        let scopes: Vec<String> = scope.map(str::to_string).into_iter().collect();
        let query = KvQuery {
            scopes: scope.map(|_| scopes.as_slice()),
            prefix,
            after: None,
            limit: None,
        };
        self.kv_page(&query).await
    }

    /// The keys `query` selects, by scope and name; expired keys are left out. Reads
    /// through the primary key from the cursor, so a page costs its own rows.
    pub async fn kv_page(&self, query: &KvQuery<'_>) -> Result<Vec<KvRow>> {
        let pattern = format!(
            "{}%",
            query
                .prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let mut sql = format!(
            "SELECT {KV_COLUMNS} FROM kv WHERE name LIKE $1 ESCAPE '\\' \
             AND (expires_at IS NULL OR expires_at > $2)"
        );
        let mut n = 2;
        let mut mark = || {
            n += 1;
            format!("${n}")
        };
        if let Some(scopes) = query.scopes {
            if scopes.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = scopes.iter().map(|_| mark()).collect();
            sql.push_str(&format!(" AND scope IN ({})", marks.join(", ")));
        }
        if query.after.is_some() {
            // The leading `scope >= …` starts the primary-key scan at the cursor.
            let (a0, a, b, c) = (mark(), mark(), mark(), mark());
            sql.push_str(&format!(
                " AND scope >= {a0} AND (scope > {a} OR (scope = {b} AND name > {c}))"
            ));
        }
        sql.push_str(" ORDER BY scope, name");
        if let Some(limit) = query.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pattern)
            .bind(now_ms());
        for scope in query.scopes.unwrap_or_default() {
            q = q.bind(scope.clone());
        }
        if let Some((scope, name)) = query.after {
            q = q
                .bind(scope.to_string())
                .bind(scope.to_string())
                .bind(scope.to_string())
                .bind(name.to_string());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(kv_row).collect()
    }

    /// Deletes a key with a `kv.deleted` event; false when there was none.
    pub async fn kv_delete(&self, scope: &str, name: &str, actor: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query(
            "DELETE FROM kv WHERE scope = $1 AND name = $2 \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(scope)
        .bind(name)
        .bind(now_ms())
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
                types::KV_DELETED,
                actor,
                kv_payload(scope, name, None, false),
            ),
        )
        .await?;
        super::bump(&mut tx, KV_VERSION).await?;
        tx.commit().await?;
        self.notifier.publish(Notice::Event { id });
        Ok(true)
    }

    /// Deletes keys whose time ran out, each with a `kv.expired` event. Returns how many.
    pub async fn kv_expire(&self) -> Result<usize> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1 \
             RETURNING scope, name, secret",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let events: Vec<NewEvent> = rows
            .iter()
            .map(|(s, n, secret)| {
                NewEvent::new(
                    types::KV_EXPIRED,
                    "system",
                    kv_payload(s, n, None, *secret != 0),
                )
            })
            .collect();
        let ids = crate::events::append_many_in(&mut tx, self.dialect, &events).await?;
        super::bump(&mut tx, KV_VERSION).await?;
        tx.commit().await?;
        for id in ids {
            self.notifier.publish(Notice::Event { id });
        }
        Ok(rows.len())
    }

    /// The datastore's version: it moves with every change (set, delete, expiry), so a
    /// reader whose snapshot was read after seeing this version may keep it until the
    /// version moves.
    pub async fn kv_version(&self) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        super::counter(&mut conn, KV_VERSION).await
    }

    /// Every live key, for rendering (`st2kv`).
    pub async fn kv_all(&self) -> Result<Vec<KvRow>> {
        self.kv_list(None, "").await
    }
}
