//! API tokens, join tokens and agent credentials.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a bearer token may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read-only access.
    Viewer,
    /// May run commands and change the fleet, but not manage tokens.
    Operator,
    /// Everything, including tokens.
    Admin,
}

impl Role {
    /// Lower-case name as used on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The three kinds of secret the controller hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A bearer token for people and scripts, with a [`Role`].
    Api,
    /// A token an agent trades once for its own credential.
    Join,
    /// An agent's own credential, bound to one host.
    Agent,
}

impl TokenKind {
    /// Lower-case name as used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Join => "join",
            TokenKind::Agent => "agent",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "api" => Some(TokenKind::Api),
            "join" => Some(TokenKind::Join),
            "agent" => Some(TokenKind::Agent),
            _ => None,
        }
    }
}

/// A token as listed: never includes the secret, only its public id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Public identifier (also the prefix of the secret's display form).
    pub id: String,
    /// Name given at creation.
    pub name: String,
    /// Kind of token.
    pub kind: TokenKind,
    /// Role, for API tokens.
    pub role: Option<Role>,
    /// Host the credential belongs to, for agent credentials.
    pub host_id: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used to authenticate (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A name that says who or what uses it (1 to 64 characters; `agent:…` is
    /// reserved).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// `api` (default) or `join`.
    #[serde(default = "default_kind")]
    pub kind: TokenKind,
    /// Role of an API token (default `viewer`); ignored for join tokens.
    #[serde(default)]
    pub role: Option<Role>,
}

fn default_kind() -> TokenKind {
    TokenKind::Api
}

/// Answer to token creation: the only time the secret is ever shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The stored token.
    pub token: TokenInfo,
    /// The secret to put in `Authorization: Bearer …`. Not stored by the controller.
    pub secret: String,
}

/// `GET /api/v1/whoami`: who the presented token is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Token id.
    pub token_id: String,
    /// Token name, used as the actor of events.
    pub name: String,
    /// Role of the token.
    pub role: Role,
}
