//! `drover model check|history|diff`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_core::model::ModelFile;
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
        Action::History { json } => {
            let client = args.conn.client()?;
            let versions: Vec<ModelVersion> = client.get("/models").await?;
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
    let files_a: BTreeMap<&str, &str> = a
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let files_b: BTreeMap<&str, &str> = b
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let mut paths: Vec<&str> = files_a.keys().chain(files_b.keys()).copied().collect();
    paths.sort();
    paths.dedup();
    let mut out = format!(
        "model version {} ({}) -> {} ({})\n",
        a.id, a.message, b.id, b.message
    );
    let mut changed = 0;
    for path in paths {
        let old = files_a.get(path).copied().unwrap_or("");
        let new = files_b.get(path).copied().unwrap_or("");
        if old == new {
            continue;
        }
        changed += 1;
        let diff = similar::TextDiff::from_lines(old, new);
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("a/{path}"), &format!("b/{path}"))
                .to_string(),
        );
    }
    if changed == 0 {
        out.push_str("no differences\n");
    }
    out
}
