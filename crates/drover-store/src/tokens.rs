//! API tokens, join tokens and agent credentials. Only SHA-256 hashes of secrets are
//! stored; the secret itself never reaches the database.

use drover_proto::auth::{Role, TokenInfo, TokenKind};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::rows::{now_ms, opt_time, parse_enum, time};
use crate::{Result, Store, StoreError};

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Public id.
    pub id: String,
    /// Name (the actor of the events it causes).
    pub name: String,
    /// Kind.
    pub kind: TokenKind,
    /// Role, for API tokens.
    pub role: Option<Role>,
    /// Host, for agent credentials.
    pub host_id: Option<String>,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// Who created it.
    pub created_by: String,
}

/// A stored token, as authentication needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// What the API shows.
    pub info: TokenInfo,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
}

const COLUMNS: &str =
    "id, name, kind, role, host_id, secret_hash, created_by, created_at, revoked_at, last_used_at";

fn record(row: &AnyRow) -> Result<TokenRecord> {
    let kind: String = row.try_get("kind")?;
    let role: Option<String> = row.try_get("role")?;
    Ok(TokenRecord {
        info: TokenInfo {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            kind: parse_enum("tokens", &kind, TokenKind::parse)?,
            role: match role {
                Some(r) => Some(parse_enum("tokens", &r, Role::parse)?),
                None => None,
            },
            host_id: row.try_get("host_id")?,
            created_by: row.try_get("created_by")?,
            created_at: time(row.try_get("created_at")?),
            revoked_at: opt_time(row.try_get("revoked_at")?),
            last_used_at: opt_time(row.try_get("last_used_at")?),
        },
        secret_hash: row.try_get("secret_hash")?,
    })
}

pub(crate) async fn insert<'e, E>(exec: E, token: &NewToken, now: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO tokens (id, name, kind, role, host_id, secret_hash, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&token.id)
    .bind(&token.name)
    .bind(token.kind.as_str())
    .bind(token.role.map(|r| r.as_str()))
    .bind(&token.host_id)
    .bind(&token.secret_hash)
    .bind(&token.created_by)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(())
}

impl Store {
    /// Stores a new token.
    pub async fn create_token(&self, token: NewToken) -> Result<TokenInfo> {
        insert(&self.pool, &token, now_ms()).await?;
        self.get_token(&token.id)
            .await?
            .map(|t| t.info)
            .ok_or_else(|| StoreError::Conflict("token vanished after insert".into()))
    }

    /// Looks a token up by the hash of its secret (revoked ones included: the caller
    /// decides, so that it can record why a request was refused).
    pub async fn find_token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM tokens WHERE secret_hash = $1"))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Looks a token up by id.
    pub async fn get_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(sql!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Lists tokens, newest first. Agent credentials are included only when asked.
    pub async fn list_tokens(&self, include_agents: bool) -> Result<Vec<TokenInfo>> {
        let sql = if include_agents {
            format!("SELECT {COLUMNS} FROM tokens ORDER BY created_at DESC, id DESC")
        } else {
            format!(
                "SELECT {COLUMNS} FROM tokens WHERE kind <> 'agent' ORDER BY created_at DESC, id DESC"
            )
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| record(r).map(|t| t.info)).collect()
    }

    /// Revokes a token. Returns it (already revoked ones unchanged), or `None` if no
    /// token has that id.
    pub async fn revoke_token(&self, id: &str) -> Result<Option<TokenInfo>> {
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(self.get_token(id).await?.map(|t| t.info))
    }

    /// Records that a token was used (at most once a minute, to keep writes rare).
    pub async fn touch_token(&self, id: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "UPDATE tokens SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - 60_000)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }
}
