//! Automation API types: datastore keys, packs, actions, rules, webhooks, traces.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What is shown instead of a secret value.
pub const MASK: &str = "********";

/// A datastore key as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KvPair {
    /// `system`, or `user:<name>` for a user's own keys.
    pub scope: String,
    /// Key name.
    pub name: String,
    /// The value; `********` for a secret unless decryption was asked for and allowed.
    pub value: String,
    /// Whether the value is a secret (encrypted at rest).
    pub secret: bool,
    /// Whether `value` is the decrypted secret.
    #[serde(default)]
    pub decrypted: bool,
    /// When it expires (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Last change (Unix ms).
    pub updated_at: i64,
    /// Who changed it last.
    pub updated_by: String,
}

/// `PUT /kv/{scope}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KvPut {
    /// The value (text; JSON values are stored as their text).
    pub value: String,
    /// Encrypt at rest and mask everywhere.
    #[serde(default)]
    pub secret: bool,
    /// Expire after this many seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `POST /webhooks`: register a webhook with its own secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Name: callers post to `/api/v1/webhooks/{name}`.
    pub name: String,
    /// `token` (the caller sends `X-Drover-Webhook-Token: <secret>`) or `hmac` (the caller
    /// signs the body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`, as GitHub does).
    #[serde(default = "default_auth")]
    pub auth: String,
    /// The secret; generated (and shown once) when left out.
    #[serde(default)]
    pub secret: Option<String>,
}

fn default_auth() -> String {
    "token".into()
}

/// A registered webhook (its secret is never shown again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookInfo {
    /// Name.
    pub name: String,
    /// `token` or `hmac`.
    pub auth: String,
    /// The URL path to post to.
    pub path: String,
    /// When (Unix ms).
    pub created_at: i64,
    /// By whom.
    pub created_by: String,
    /// The secret: only in the answer that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What a webhook call led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookAccepted {
    /// The `webhook` event recorded (rules match it).
    pub event_id: i64,
}
