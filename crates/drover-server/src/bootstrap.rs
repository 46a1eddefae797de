//! First start: the admin token and the first agent join token.

use drover_proto::auth::{Role, TokenKind};
use drover_proto::events::types;
use drover_store::{NewEvent, NewToken, Store};

use crate::auth::{hash_secret, new_secret, new_token_id};

/// The secrets created at first start. They are returned once (the binary prints them)
/// and only their hashes are stored.
#[derive(Clone)]
pub struct Bootstrap {
    /// Admin API token.
    pub admin_token: String,
    /// Agent join token.
    pub join_token: String,
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bootstrap { .. }")
    }
}

/// Creates the first tokens if this store has never been bootstrapped. Exactly one
/// controller wins, even when several start together on one PostgreSQL.
pub(crate) async fn first_start(store: &Store) -> anyhow::Result<Option<Bootstrap>> {
    if !store
        .meta_set_once("bootstrapped_at", &chrono::Utc::now().to_rfc3339())
        .await?
    {
        return Ok(None);
    }
    let admin_token = new_secret(TokenKind::Api);
    let join_token = new_secret(TokenKind::Join);
    for (name, kind, role, secret) in [
        ("admin", TokenKind::Api, Some(Role::Admin), &admin_token),
        ("default-join", TokenKind::Join, None, &join_token),
    ] {
        let info = store
            .create_token(NewToken {
                id: new_token_id(),
                name: name.to_string(),
                kind,
                role,
                host_id: None,
                secret_hash: hash_secret(secret),
                created_by: "system".to_string(),
            })
            .await?;
        store
            .append_event(NewEvent::new(
                types::TOKEN_CREATED,
                "system",
                serde_json::json!({
                    "token_id": info.id,
                    "name": info.name,
                    "kind": kind.as_str(),
                    "role": role.map(|r| r.as_str()),
                }),
            ))
            .await?;
    }
    Ok(Some(Bootstrap {
        admin_token,
        join_token,
    }))
}
