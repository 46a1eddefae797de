//! `drover packs install|list|show|remove`: StackStorm packs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_proto::automation::{PackFileBody, PackInfo, PackInstall, PackInstalled};
use reqwest::Method;

use super::{Conn, usage_error};
use crate::client::enc;
use crate::render;

/// Packs: StackStorm's layout (`pack.yaml`, `actions/`, `actions/workflows/`, `rules/`,
/// `policies/`), loaded as they are. Installing checks every file first — action
/// metadata, parameters, rules, workflows, the actions they use — and refuses the
/// whole pack on any error (each with file, line and field), so a half-installed pack
/// is never left behind. Installing a pack again replaces it at once and records a
/// `pack.installed` event. `sensors/` and `aliases/` are reported as ignored.
///
/// The built-in packs `core` (local, remote, http, noop, echo) and `drover` (run,
/// apply, drain, undrain) are always there.
///
/// Examples:
///   drover packs install examples/packs/hello
///   drover packs list
///   drover packs show hello
///   drover packs remove hello
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct PacksArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Install (or replace) the pack in DIR.
    Install {
        /// The pack's directory (holds pack.yaml).
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List packs.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one pack: its actions and rules.
    Show {
        /// Pack name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed pack.
    Remove {
        /// Pack name.
        name: String,
    },
}

/// Largest file read from a pack directory.
const MAX_FILE: u64 = 1024 * 1024;

/// Every text file under `dir`, with paths relative to it (hidden files skipped).
fn read_pack(dir: &Path) -> anyhow::Result<Vec<PackFileBody>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PackFileBody>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            let path = e.path();
            let ty = e.file_type()?;
            if ty.is_dir() {
                walk(root, &path, out)?;
            } else if ty.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or(name);
                if e.metadata()?.len() > MAX_FILE {
                    anyhow::bail!("{rel}: larger than 1 MiB; a pack holds text files");
                }
                let bytes = std::fs::read(&path)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("{rel}: not UTF-8 text"))?;
                out.push(PackFileBody { path: rel, text });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

fn print_pack(p: &PackInfo) {
    println!(
        "{} {}{}",
        p.name,
        p.version.clone().unwrap_or_default(),
        if p.builtin { " (built in)" } else { "" }
    );
    if let Some(d) = &p.description {
        println!("  {d}");
    }
    println!("  actions: {}", p.actions.join(", "));
    if !p.rules.is_empty() {
        println!("  rules: {}", p.rules.join(", "));
    }
    if !p.ignored.is_empty() {
        println!("  ignored: {}", p.ignored.join(", "));
    }
}

/// Runs `drover packs …`.
pub async fn run(args: PacksArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.action {
        Action::Install { dir, json } => {
            if !dir.join("pack.yaml").is_file() {
                return Ok(usage_error(format!(
                    "{}: no pack.yaml; a pack directory holds pack.yaml, actions/, rules/",
                    dir.display()
                )));
            }
            let files = match read_pack(&dir) {
                Ok(f) => f,
                Err(e) => return Ok(usage_error(format!("{}: {e}", dir.display()))),
            };
            let done: PackInstalled = client.post("/packs", &PackInstall { files }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&done)?);
            } else if done.unchanged {
                println!(
                    "pack {} is already installed with the same content",
                    done.pack.name
                );
            } else {
                match &done.replaced {
                    Some(v) => println!("replaced pack {} (was {v})", done.pack.name),
                    None => println!("installed pack {}", done.pack.name),
                }
                print_pack(&done.pack);
            }
        }
        Action::List { json } => {
            let packs: Vec<PackInfo> = client.get_all("/packs").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&packs)?);
            } else {
                let mut table =
                    render::table(&["PACK", "VERSION", "ACTIONS", "RULES", "INSTALLED", "BY"]);
                for p in &packs {
                    table.add_row(vec![
                        p.name.clone(),
                        p.version.clone().unwrap_or_default(),
                        p.actions.len().to_string(),
                        p.rules.len().to_string(),
                        p.installed_at
                            .map(render::time_ms)
                            .unwrap_or_else(|| "built in".into()),
                        p.installed_by.clone().unwrap_or_default(),
                    ]);
                }
                println!("{table}");
            }
        }
        Action::Show { name, json } => {
            let packs: Vec<PackInfo> = client.get_all("/packs").await?;
            let Some(p) = packs.into_iter().find(|p| p.name == name) else {
                eprintln!("error: no pack `{name}`");
                return Ok(ExitCode::from(1));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print_pack(&p);
            }
        }
        Action::Remove { name } => {
            let resp = client
                .request(Method::DELETE, &format!("/packs/{}", enc(&name)))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the controller: {e}"))?;
            crate::client::check(resp).await?;
            println!("removed pack {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
