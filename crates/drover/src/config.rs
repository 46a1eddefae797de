//! Where the CLI finds its controller and token: flags, `DROVER_URL`/`DROVER_TOKEN`, or the
//! file `drover login` writes (`$XDG_CONFIG_HOME/drover/config.json`, else
//! `~/.config/drover/config.json`, mode 0600).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// Saved login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// Controller base URL.
    pub url: String,
    /// API token.
    pub token: String,
}

/// Path of the config file.
pub fn path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("drover/config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/drover/config.json"))
}

/// Reads the saved login, if any.
pub fn load() -> anyhow::Result<Option<Saved>> {
    let Some(p) = path() else { return Ok(None) };
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{}: not a valid drover config", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// Writes the login (0600, atomically).
pub fn save(saved: &Saved) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(p) = path() else {
        bail!("neither XDG_CONFIG_HOME nor HOME is set; cannot save the login")
    };
    let dir = p.parent().context("config path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(".config.json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(serde_json::to_string_pretty(saved)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(p)
}
