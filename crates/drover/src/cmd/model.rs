//! `drover model check|history|diff`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_core::model::ModelFile;
use drover_proto::page::Page;
use drover_store::ModelVersion;

use super::{Conn, usage_error};
use crate::model_dir;
use crate::render;

/// Check a model directory, and look at the model versions the controller stored.
///
/// A model is a directory of YAML files (services, hostclasses, host pins) that you keep
/// in git; see docs/model.md. `check` needs no controller: it reports every error with
/// file, line, column, field and reason, and exits 1 if there is any.
///
/// Examples:
///   drover model check examples/model
///   drover model history
///   drover model diff 3 4
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ModelArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Validate a model directory (no controller needed).
    Check {
        /// The model directory.
        dir: PathBuf,
        /// Print the errors (or the parsed model) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The stored model versions, newest first.
    History {
        /// Show at most this many versions (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Show versions older than this one (page back through history).
        #[arg(long, value_name = "VERSION")]
        before: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// What changed between two stored versions, file by file.
    Diff {
        /// Older version number.
        a: i64,
        /// Newer version number.
        b: i64,
    },
}

/// Reads a model directory into the core's input type.
pub fn read_model(dir: &std::path::Path) -> anyhow::Result<Vec<ModelFile>> {
    Ok(model_dir::read(dir)?
        .into_iter()
        .map(|f| ModelFile {
            path: f.path,
            text: f.text,
        })
        .collect())
}

pub async fn run(args: ModelArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Check { dir, json } => {
            let files = match read_model(&dir) {
                Ok(f) => f,
                Err(e) => return Ok(usage_error(format!("{e:#}"))),
            };
            match drover_core::model::load(&files) {
                Ok(model) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&model)?);
                    } else {
                        let mut extra = String::new();
                        if !model.providers.is_empty() || !model.generators.is_empty() {
                            extra = format!(
                                ", {} providers, {} generators",
                                model.providers.len(),
                                model.generators.len()
                            );
                        }
                        println!(
                            "model ok: {} services, {} hostclasses, {} host pins{extra} in {} files (content hash {})",
                            model.services.len(),
                            model.hostclasses.len(),
                            model.hosts.len(),
                            files.len(),
                            &model.content_hash[..12.min(model.content_hash.len())]
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&errors)?);
                    } else {
                        for e in &errors {
                            eprintln!("{}", prefix_dir(&dir, &e.to_string()));
                        }
                        eprintln!(
                            "{} error{} in {}",
                            errors.len(),
                            if errors.len() == 1 { "" } else { "s" },
                            dir.display()
                        );
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Action::History {
            limit,
            before,
            json,
        } => {
            let client = args.conn.client()?;
            let cursor = before.map(|b| format!("&after={b}")).unwrap_or_default();
            let page: Page<ModelVersion> = client
                .get(&format!("/models?limit={limit}{cursor}"))
                .await?;
            let versions = page.items;
            if let Some(next) = &page.next
                && !json
            {
                eprintln!("older versions: drover model history --before {next}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
            } else {
                let mut table = render::table(&["VERSION", "APPLIED", "AUTHOR", "HASH", "MESSAGE"]);
                for v in &versions {
                    table.add_row(vec![
                        v.id.to_string(),
                        render::time(&v.created_at),
                        v.author.clone(),
                        v.content_hash.chars().take(12).collect(),
                        v.message.clone(),
                    ]);
                }
                println!("{table}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Diff { a, b } => {
            let client = args.conn.client()?;
            let va: ModelVersion = client.get(&format!("/models/{a}")).await?;
            let vb: ModelVersion = client.get(&format!("/models/{b}")).await?;
            print!("{}", diff_versions(&va, &vb));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Error lines name files relative to the model dir; show them as the user typed it.
fn prefix_dir(dir: &std::path::Path, line: &str) -> String {
    format!("{}/{line}", dir.display().to_string().trim_end_matches('/'))
}

/// A unified diff of two versions, file by file.
pub fn diff_versions(a: &ModelVersion, b: &ModelVersion) -> String {
    let diffs = drover_core::model::diff::diff_files(&a.file_pairs(), &b.file_pairs());
    let mut out = format!(
        "model version {} ({}) -> {} ({})\n",
        a.id, a.message, b.id, b.message
    );
    for d in &diffs {
        out.push_str(&d.unified());
    }
    if diffs.is_empty() {
        out.push_str("no differences\n");
    }
    out
}
