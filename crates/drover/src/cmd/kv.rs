//! `drover kv set|get|list|delete`: the datastore rules and actions read (`st2kv`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::automation::{KvPair, KvPut};
use reqwest::Method;

use super::{Conn, usage_error};
use crate::client::enc;
use crate::render;

/// The datastore: key/value pairs that rules, actions and workflows read as
/// `{{ st2kv.system.NAME }}` (or `st2kv.user.NAME` for your own keys).
///
/// Secrets (`--secret`) are encrypted at rest with the controller's key file
/// (`<data dir>/secrets.key`, created at first start) and shown as ******** unless you
/// pass `--decrypt` and may see them: admins for system keys, the owner for user keys.
/// Every change is an event (kv.set, kv.deleted, kv.expired) that rules can react to.
///
/// Examples:
///   drover kv set deploy_window open
///   drover kv set db_password 's3cr3t' --secret
///   drover kv set maintenance on --ttl 30m
///   drover kv set my_pref dark --scope user
///   drover kv get db_password --decrypt
///   drover kv list --prefix deploy_
///   drover kv delete maintenance
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct KvArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Write a key.
    Set {
        /// Key name (letters, digits, `_`, `-`, `.`, `:`).
        key: String,
        /// The value.
        value: String,
        /// Encrypt at rest and mask everywhere.
        #[arg(long)]
        secret: bool,
        /// Expire after this long (e.g. 30s, 10m, 2h).
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// `system` (shared) or `user` (your own).
        #[arg(long, default_value = "system")]
        scope: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Read a key.
    Get {
        /// Key name.
        key: String,
        /// `system` or `user`.
        #[arg(long, default_value = "system")]
        scope: String,
        /// Show a secret's value (admins; the owner for user keys).
        #[arg(long)]
        decrypt: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys.
    List {
        /// `system`, `user` or `all`.
        #[arg(long, default_value = "all")]
        scope: String,
        /// Only keys whose names start with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Show secrets' values (admins; the owner for user keys).
        #[arg(long)]
        decrypt: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a key.
    Delete {
        /// Key name.
        key: String,
        /// `system` or `user`.
        #[arg(long, default_value = "system")]
        scope: String,
    },
}

fn print_pairs(pairs: &[KvPair]) {
    let mut table = render::table(&["SCOPE", "NAME", "VALUE", "SECRET", "EXPIRES", "BY"]);
    for p in pairs {
        table.add_row(vec![
            p.scope.clone(),
            p.name.clone(),
            p.value.clone(),
            if p.secret {
                "yes".into()
            } else {
                String::new()
            },
            p.expires_at.map(render::time_ms).unwrap_or_default(),
            p.updated_by.clone(),
        ]);
    }
    println!("{table}");
}

/// Runs `drover kv …`.
pub async fn run(args: KvArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Action::Set {
            key,
            value,
            secret,
            ttl,
            scope,
            json,
        } => {
            let ttl_seconds = match ttl {
                None => None,
                Some(t) => match drover_core::duration::parse_duration(&t) {
                    Ok(d) if d.as_secs() >= 1 => Some(d.as_secs()),
                    Ok(_) => return Ok(usage_error("--ttl: must be at least 1s")),
                    Err(e) => return Ok(usage_error(format!("--ttl: {e}"))),
                },
            };
            let body = KvPut {
                value,
                secret,
                ttl_seconds,
            };
            let pair: KvPair = client
                .send(
                    client
                        .request(Method::PUT, &format!("/kv/{}/{}", enc(&scope), enc(&key)))
                        .json(&body),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pair)?);
            } else {
                println!("set {}/{}", pair.scope, pair.name);
            }
        }
        Action::Get {
            key,
            scope,
            decrypt,
            json,
        } => {
            let pair: KvPair = client
                .get(&format!(
                    "/kv/{}/{}?decrypt={decrypt}",
                    enc(&scope),
                    enc(&key)
                ))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pair)?);
            } else {
                println!("{}", pair.value);
            }
        }
        Action::List {
            scope,
            prefix,
            decrypt,
            json,
        } => {
            let pairs: Vec<KvPair> = client
                .get_all(&format!(
                    "/kv?scope={}&prefix={}&decrypt={decrypt}",
                    enc(&scope),
                    enc(&prefix)
                ))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pairs)?);
            } else if pairs.is_empty() {
                println!("no keys");
            } else {
                print_pairs(&pairs);
            }
        }
        Action::Delete { key, scope } => {
            let resp = client
                .request(
                    Method::DELETE,
                    &format!("/kv/{}/{}", enc(&scope), enc(&key)),
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the controller: {e}"))?;
            crate::client::check(resp).await?;
            println!("deleted {scope}/{key}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
