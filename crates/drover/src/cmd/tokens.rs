//! `drover tokens create|list|revoke`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::auth::{CreateTokenRequest, CreatedToken, Role, TokenInfo, TokenKind};

use super::{Conn, usage_error};
use crate::client::enc;
use crate::render;

/// Manage API tokens and agent join tokens (needs an admin token).
///
/// A token's secret is printed once, at creation; the controller keeps only its hash.
/// Revoking takes effect at once, for API tokens, join tokens and agent credentials.
///
/// Examples:
///   drover tokens create ci --role operator
///   drover tokens create rack-12 --join
///   drover tokens list --agents
///   drover tokens revoke tok_1a2b3c4d5e6f
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct TokensArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Create a token and print its secret (once).
    Create {
        /// A name saying who or what uses it (the actor in events).
        name: String,
        /// Role of an API token: viewer, operator or admin.
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Create an agent join token instead of an API token.
        #[arg(long, conflicts_with = "role")]
        join: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (secrets are never shown).
    List {
        /// Include agent credentials.
        #[arg(long)]
        agents: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token or agent credential by id.
    Revoke {
        /// Token id (`tok_…`).
        id: String,
    },
}

pub async fn run(args: TokensArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Action::Create {
            name,
            role,
            join,
            json,
        } => {
            let role = match Role::parse(&role) {
                Some(r) => r,
                None => {
                    return Ok(usage_error(format!(
                        "--role `{role}`: expected viewer, operator or admin"
                    )));
                }
            };
            let req = CreateTokenRequest {
                name,
                kind: if join {
                    TokenKind::Join
                } else {
                    TokenKind::Api
                },
                role: (!join).then_some(role),
            };
            let created: CreatedToken = client.post("/tokens", &req).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&created)?);
            } else {
                println!(
                    "created {} token `{}` ({}){}",
                    created.token.kind.as_str(),
                    created.token.name,
                    created.token.id,
                    created
                        .token
                        .role
                        .map(|r| format!(", role {}", r.as_str()))
                        .unwrap_or_default()
                );
                println!("secret (shown once): {}", created.secret);
            }
        }
        Action::List { agents, json } => {
            let tokens: Vec<TokenInfo> =
                client.get_all(&format!("/tokens?agents={agents}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                let mut table = render::table(&[
                    "ID",
                    "NAME",
                    "KIND",
                    "ROLE",
                    "CREATED BY",
                    "CREATED",
                    "LAST USED",
                    "REVOKED",
                ]);
                for t in &tokens {
                    table.add_row(vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.kind.as_str().to_string(),
                        t.role.map(|r| r.as_str().to_string()).unwrap_or_default(),
                        t.created_by.clone(),
                        render::time(&t.created_at),
                        t.last_used_at
                            .as_ref()
                            .map(render::time)
                            .unwrap_or_default(),
                        t.revoked_at.as_ref().map(render::time).unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
        }
        Action::Revoke { id } => {
            let t: TokenInfo = client.delete(&format!("/tokens/{}", enc(&id))).await?;
            println!("revoked {} token `{}` ({})", t.kind.as_str(), t.name, t.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
