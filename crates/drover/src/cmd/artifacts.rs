//! `drover artifacts push|list`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{Conn, usage_error};
use crate::client::{check, enc};
use crate::render;

/// Upload release artifacts (.tar.gz) to the controller's content-addressed store, and
/// list them.
///
/// A pushed artifact is named by its SHA-256. Use the printed `store:<sha256>` URL and
/// digest in a service's `artifact` in the model; agents download it from the
/// controller with their own credential and verify the digest.
///
/// Examples:
///   drover artifacts push build/web-2.0.1.tar.gz
///   drover artifacts list
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ArtifactsArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Upload a .tar.gz (pushing the same bytes twice is harmless).
    Push {
        /// The file.
        file: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List stored artifacts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: ArtifactsArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Action::Push { file, json } => {
            let meta = match std::fs::metadata(&file) {
                Ok(m) if m.is_file() => m,
                Ok(_) => return Ok(usage_error(format!("{}: not a file", file.display()))),
                Err(e) => return Ok(usage_error(format!("{}: {e}", file.display()))),
            };
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "artifact.tar.gz".into());
            let handle = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("cannot open {}", file.display()))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(handle));
            let resp = client
                .request(
                    reqwest::Method::POST,
                    &format!("/artifacts?name={}", enc(&name)),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/gzip")
                .header(reqwest::header::CONTENT_LENGTH, meta.len())
                .body(body)
                .send()
                .await
                .with_context(|| format!("cannot reach the controller at {}", client.base()))?;
            let v: serde_json::Value = check(resp).await?.json().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let created = v["created"].as_bool().unwrap_or(false);
                println!(
                    "{} {} ({} bytes)",
                    if created { "stored" } else { "already stored:" },
                    name,
                    v["artifact"]["size"]
                );
                println!("  url:    {}", v["url"].as_str().unwrap_or(""));
                println!(
                    "  sha256: {}",
                    v["artifact"]["sha256"].as_str().unwrap_or("")
                );
            }
        }
        Action::List { json } => {
            let items: Vec<serde_json::Value> = client.get_all("/artifacts").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                let mut table =
                    render::table(&["SHA256", "NAME", "SIZE", "UPLOADED BY", "CREATED"]);
                for a in &items {
                    table.add_row(vec![
                        a["sha256"].as_str().unwrap_or("").to_string(),
                        a["name"].as_str().unwrap_or("").to_string(),
                        a["size"].to_string(),
                        a["uploaded_by"].as_str().unwrap_or("").to_string(),
                        a["created_at"].as_str().unwrap_or("").to_string(),
                    ]);
                }
                println!("{table}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
