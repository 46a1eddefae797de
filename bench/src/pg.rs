//! Throw-away PostgreSQL databases for the controllers (`--postgres`), made and dropped
//! with `psql`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::procs::run_timed;

/// A database created for one controller; dropped (`WITH (FORCE)`) when this is dropped.
pub struct PgDb {
    admin_url: String,
    /// Its name.
    pub name: String,
    /// URL for `drover server --db`.
    pub url: String,
}

/// Fails unless `url` is `postgres://USER@HOST[:PORT]/DB` with a loopback HOST.
pub fn check_admin_url(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .with_context(|| format!("--pg-admin `{url}`: expected postgres://USER@HOST:PORT/DB"))?;
    let (authority, db) = rest
        .split_once('/')
        .with_context(|| format!("--pg-admin `{url}`: no database name"))?;
    if db.is_empty() || db.contains(['?', '/']) {
        bail!("--pg-admin `{url}`: expected a plain database name after the host");
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').map_or(v6, |(h, _)| h)
    } else {
        host_port.split_once(':').map_or(host_port, |(h, _)| h)
    };
    if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
        bail!("--pg-admin `{url}`: the benchmark runs on loopback only, not on `{host}`");
    }
    Ok(())
}

/// Runs one statement through `psql` on the admin database.
fn psql(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        admin_url,
        "-c",
        sql,
    ]);
    let out = run_timed(&mut cmd, Duration::from_secs(60))
        .context("cannot run psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql `{sql}` failed ({}): {}",
            out.status,
            out.stderr.trim()
        );
    }
    Ok(())
}

/// Creates a fresh database named after this process, `tag` and the time.
pub fn create(admin_url: &str, tag: &str) -> anyhow::Result<PgDb> {
    check_admin_url(admin_url)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "drover_bench_{}_{tag}_{:x}",
        std::process::id(),
        nanos & 0xffff_ffff
    );
    psql(admin_url, &format!("CREATE DATABASE {name}"))?;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    Ok(PgDb {
        admin_url: admin_url.to_string(),
        url: format!("{base}/{name}"),
        name,
    })
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = psql(&self.admin_url, &sql) {
            eprintln!("warning: could not drop database {}: {e:#}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_admin_url;

    #[test]
    fn loopback_only() {
        assert!(check_admin_url("postgres://postgres@127.0.0.1:5432/postgres").is_ok());
        assert!(check_admin_url("postgres://u@localhost/postgres").is_ok());
        assert!(check_admin_url("postgres://u@[::1]:5432/postgres").is_ok());
        assert!(check_admin_url("postgres://u@db.example:5432/postgres").is_err());
        assert!(check_admin_url("mysql://u@127.0.0.1/x").is_err());
        assert!(check_admin_url("postgres://u@127.0.0.1:5432/").is_err());
    }
}
