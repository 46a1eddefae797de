//! `drover webhooks list|create|delete`: webhooks outside systems call to fire rules.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::automation::{WebhookCreate, WebhookInfo};
use reqwest::Method;

use super::Conn;
use crate::client::enc;
use crate::render;

/// Webhooks: `POST /api/v1/webhooks/NAME` records a `webhook` event (StackStorm's
/// core.st2.webhook) that rules match on `trigger.body`, `trigger.headers`.
///
/// Any webhook can be called with an operator API token. A registered webhook has its
/// own secret, so the calling system needs no drover token: it sends the secret in
/// `X-Drover-Webhook-Token` (auth `token`), or signs the body with it like GitHub does
/// (`X-Hub-Signature-256: sha256=<hex>`, auth `hmac`). The secret is shown once.
///
/// Examples:
///   drover webhooks create alerts                  # prints the generated secret once
///   drover webhooks create github --auth hmac --secret "$GITHUB_HOOK_SECRET"
///   curl -X POST -H "X-Drover-Webhook-Token: $SECRET" -d '{"host":"web-1"}' \
///        http://127.0.0.1:7070/api/v1/webhooks/alerts
///   drover webhooks list
///   drover webhooks delete alerts
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List registered webhooks (secrets are never shown again).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register (or replace) a webhook with its own secret.
    Create {
        /// Name (letters, digits, `_`, `-`, `.`).
        name: String,
        /// `token` or `hmac`.
        #[arg(long, default_value = "token")]
        auth: String,
        /// The secret (at least 16 characters); generated when left out.
        #[arg(long)]
        secret: Option<String>,
        /// Print JSON (includes the secret).
        #[arg(long)]
        json: bool,
    },
    /// Unregister a webhook.
    Delete {
        /// Name.
        name: String,
    },
}

/// Runs `drover webhooks …`.
pub async fn run(args: WebhooksArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Action::List { json } => {
            let hooks: Vec<WebhookInfo> = client.get_all("/webhooks").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hooks)?);
            } else if hooks.is_empty() {
                println!("no registered webhooks");
            } else {
                let mut table = render::table(&["NAME", "AUTH", "PATH", "CREATED", "BY"]);
                for h in &hooks {
                    table.add_row(vec![
                        h.name.clone(),
                        h.auth.clone(),
                        h.path.clone(),
                        render::time_ms(h.created_at),
                        h.created_by.clone(),
                    ]);
                }
                println!("{table}");
            }
        }
        Action::Create {
            name,
            auth,
            secret,
            json,
        } => {
            let hook: WebhookInfo = client
                .post("/webhooks", &WebhookCreate { name, auth, secret })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hook)?);
            } else {
                println!(
                    "registered webhook {} ({}) at {}",
                    hook.name, hook.auth, hook.path
                );
                if let Some(s) = &hook.secret {
                    println!("secret (shown once): {s}");
                }
            }
        }
        Action::Delete { name } => {
            let resp = client
                .request(Method::DELETE, &format!("/webhooks/{}", enc(&name)))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the controller: {e}"))?;
            crate::client::check(resp).await?;
            println!("deleted webhook {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
