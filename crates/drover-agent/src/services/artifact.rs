//! Artifacts: `.tar.gz` files fetched from `file://`, `http(s)://` or the controller's
//! artifact store, verified against their SHA-256 and cached by it under
//! `<state dir>/artifacts/<sha256>.tar.gz`; and the careful unpacking of one into a
//! release directory.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_proto::deploy::ArtifactRef;
use futures::StreamExt;
use reqwest::Url;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::layout::check_sha256;

/// Time limit of connecting to an artifact server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while downloading an artifact.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How the agent reaches the controller's artifact store: requests under `base` carry
/// the agent's credential, no others do.
#[derive(Clone)]
pub(crate) struct ControllerAccess {
    /// Base URL of the controller (without `/api/v1`).
    pub(crate) base: String,
    /// The agent's credential.
    pub(crate) credential: String,
}

impl std::fmt::Debug for ControllerAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerAccess")
            .field("base", &self.base)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// Whether `url` is on the same origin as `base` and under its path.
pub(crate) fn is_under(url: &Url, base: &Url) -> bool {
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return false;
    }
    let prefix = base.path().trim_end_matches('/');
    let path = url.path();
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Fetches artifacts into the cache directory.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    dir: PathBuf,
    client: reqwest::Client,
    controller: Option<(Url, String)>,
}

/// A file being written, hashed on the way; removed unless kept.
struct Part {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    bytes: u64,
    keep: bool,
}

impl Part {
    fn create(dir: &Path, sha: &str) -> io::Result<Part> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            ".{sha}.part.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(Part {
            path,
            file,
            hasher: Sha256::new(),
            bytes: 0,
            keep: false,
        })
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.file.write_all(data)
    }

    /// Checks the digest, then renames the file to `dest`.
    fn finish(mut self, expected: &str, url: &str, dest: &Path) -> Result<u64, String> {
        let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if actual != expected {
            return Err(format!(
                "artifact {url}: sha256 mismatch: expected {expected}, got {actual}; \
                 nothing was unpacked"
            ));
        }
        self.file
            .sync_all()
            .and_then(|()| fs::rename(&self.path, dest))
            .map_err(|e| format!("cannot keep artifact {url} in {}: {e}", dest.display()))?;
        self.keep = true;
        Ok(self.bytes)
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Hex SHA-256 of a file.
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

impl Fetcher {
    /// A fetcher caching into `dir` (which must exist).
    pub(crate) fn new(
        dir: PathBuf,
        controller: Option<&ControllerAccess>,
    ) -> Result<Fetcher, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(format!("drover-agent/{}", drover_proto::VERSION))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for artifacts: {e}"))?;
        let controller = match controller {
            Some(c) => {
                let base = c.base.trim().trim_end_matches('/');
                let url = Url::parse(base)
                    .map_err(|e| format!("controller URL {base:?} is not a URL: {e}"))?;
                Some((url, c.credential.clone()))
            }
            None => None,
        };
        Ok(Fetcher {
            dir,
            client,
            controller,
        })
    }

    /// The cache file of digest `sha` (normalised).
    pub(crate) fn cached_path(&self, sha: &str) -> PathBuf {
        self.dir.join(format!("{sha}.tar.gz"))
    }

    /// The cache directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the artifact available in the cache and returns its path and whether it
    /// was downloaded now (else it was cached). A cached file is checked again; one
    /// that no longer matches its digest is fetched anew.
    pub(crate) async fn fetch(
        &self,
        artifact: &ArtifactRef,
        cancel: &CancellationToken,
    ) -> Result<(PathBuf, bool), String> {
        let sha = check_sha256(&artifact.sha256)?;
        let cached = self.cached_path(&sha);
        if cached.is_file() {
            let p = cached.clone();
            let actual = tokio::task::spawn_blocking(move || sha256_file(&p))
                .await
                .map_err(|e| format!("cannot check the cached artifact: {e}"))?;
            match actual {
                Ok(a) if a == sha => return Ok((cached, false)),
                Ok(a) => {
                    tracing::warn!(path = %cached.display(), expected = %sha, actual = %a, "cached artifact is corrupt; fetching it again");
                    let _ = fs::remove_file(&cached);
                }
                Err(e) => {
                    tracing::warn!(path = %cached.display(), error = %e, "cannot read the cached artifact; fetching it again");
                    let _ = fs::remove_file(&cached);
                }
            }
        }
        let url = Url::parse(&artifact.url)
            .map_err(|e| format!("artifact URL {:?} is not a URL: {e}", artifact.url))?;
        match url.scheme() {
            "file" => {
                let source = url.to_file_path().map_err(|()| {
                    format!("artifact URL {:?} is not a local file path", artifact.url)
                })?;
                let dir = self.dir.clone();
                let text = artifact.url.clone();
                let dest = cached.clone();
                tokio::task::spawn_blocking(move || copy_file(&source, &dir, &sha, &text, &dest))
                    .await
                    .map_err(|e| format!("copying artifact {}: {e}", artifact.url))??;
            }
            "http" | "https" => self.download(&url, &sha, &cached, cancel).await?,
            other => {
                return Err(format!(
                    "artifact URL {:?}: unsupported scheme {other:?} (file, http or https)",
                    artifact.url
                ));
            }
        }
        Ok((cached, true))
    }

    async fn download(
        &self,
        url: &Url,
        sha: &str,
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let mut req = self.client.get(url.clone());
        if let Some((base, credential)) = &self.controller
            && is_under(url, base)
        {
            req = req.bearer_auth(credential);
        }
        let work = async {
            let resp = req
                .send()
                .await
                .map_err(|e| format!("cannot fetch artifact {url}: {}", error_chain(&e)))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!(
                    "cannot fetch artifact {url}: HTTP {}{}",
                    status.as_u16(),
                    status
                        .canonical_reason()
                        .map(|r| format!(" {r}"))
                        .unwrap_or_default()
                ));
            }
            let mut part = Part::create(&self.dir, sha).map_err(|e| {
                format!(
                    "cannot write into the artifact cache {}: {e}",
                    self.dir.display()
                )
            })?;
            let mut body = resp.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    format!("download of artifact {url} broke off: {}", error_chain(&e))
                })?;
                part.write(&chunk)
                    .map_err(|e| format!("cannot write artifact {url}: {e}"))?;
            }
            part.finish(sha, url.as_str(), dest).map(|_| ())
        };
        tokio::select! {
            r = work => r,
            _ = cancel.cancelled() => Err(format!("download of artifact {url} cancelled")),
        }
    }
}

fn copy_file(source: &Path, dir: &Path, sha: &str, url: &str, dest: &Path) -> Result<(), String> {
    let mut from = File::open(source).map_err(|e| format!("cannot read artifact {url}: {e}"))?;
    let mut part = Part::create(dir, sha).map_err(|e| {
        format!(
            "cannot write into the artifact cache {}: {e}",
            dir.display()
        )
    })?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| format!("cannot read artifact {url}: {e}"))?;
        if n == 0 {
            break;
        }
        part.write(&buf[..n])
            .map_err(|e| format!("cannot write artifact {url} into the cache: {e}"))?;
    }
    part.finish(sha, url, dest).map(|_| ())
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Checks an archive member's path; `None` for the archive's root (`./`).
fn entry_path(raw: &Path) -> Result<Option<PathBuf>, String> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "archive entry {:?} escapes the release directory (absolute path or '..')",
                    raw.display().to_string()
                ));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Checks that symlink `path` → `target` stays inside the release directory when
/// resolved from where the link is.
fn check_symlink(path: &Path, target: &Path) -> Result<(), String> {
    let escapes = || {
        format!(
            "archive entry {:?} is a symlink to {:?}, outside the release directory",
            path.display().to_string(),
            target.display().to_string()
        )
    };
    let mut depth: i64 = path.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(escapes());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(escapes()),
        }
    }
    Ok(())
}

/// Unpacks the `.tar.gz` at `archive` into `dest` (an empty directory). Refuses the
/// whole archive — leaving `dest` for the caller to remove — if a member has an
/// absolute path or `..`, is a symlink or hard link leading outside, or is a device or
/// FIFO. Returns the number of members unpacked.
pub(crate) fn unpack(archive: &Path, dest: &Path) -> Result<u64, String> {
    let file = File::open(archive)
        .map_err(|e| format!("cannot open artifact {}: {e}", archive.display()))?;
    let gz = flate2::read::GzDecoder::new(BufReader::new(file));
    let mut ar = tar::Archive::new(gz);
    ar.set_preserve_permissions(false);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let bad = |e: io::Error| format!("artifact is not a readable .tar.gz: {e}");
    let mut count = 0u64;
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let kind = entry.header().entry_type();
        let Some(path) = entry_path(&raw)? else {
            continue;
        };
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::Directory => {}
            T::Symlink => {
                let target = entry.link_name().map_err(bad)?.ok_or_else(|| {
                    format!(
                        "archive entry {:?} is a symlink without a target",
                        raw.display().to_string()
                    )
                })?;
                check_symlink(&path, &target)?;
            }
            T::Link => {
                let target = entry.link_name().map_err(bad)?.ok_or_else(|| {
                    format!(
                        "archive entry {:?} is a hard link without a target",
                        raw.display().to_string()
                    )
                })?;
                if entry_path(&target)?.is_none() {
                    return Err(format!(
                        "archive entry {:?} is a hard link to the release directory itself",
                        raw.display().to_string()
                    ));
                }
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            other => {
                return Err(format!(
                    "archive entry {:?} is a {other:?} entry (only files, directories and \
                     links may be in an artifact)",
                    raw.display().to_string()
                ));
            }
        }
        let unpacked = entry.unpack_in(dest).map_err(|e| {
            format!(
                "cannot unpack archive entry {:?}: {e}",
                raw.display().to_string()
            )
        })?;
        if !unpacked {
            return Err(format!(
                "archive entry {:?} escapes the release directory",
                raw.display().to_string()
            ));
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_controller_base() {
        let base = Url::parse("http://ctl:7070").expect("url");
        let yes = Url::parse("http://ctl:7070/api/v1/artifacts/ab").expect("url");
        let other_port = Url::parse("http://ctl:7071/api/v1/artifacts/ab").expect("url");
        let other_host = Url::parse("http://evil:7070/api/v1/artifacts/ab").expect("url");
        let other_scheme = Url::parse("https://ctl:7070/x").expect("url");
        assert!(is_under(&yes, &base));
        assert!(!is_under(&other_port, &base));
        assert!(!is_under(&other_host, &base));
        assert!(!is_under(&other_scheme, &base));
        let sub = Url::parse("https://h/drover/").expect("url");
        assert!(is_under(
            &Url::parse("https://h/drover/api/x").expect("url"),
            &sub
        ));
        assert!(!is_under(
            &Url::parse("https://h/droverx/api").expect("url"),
            &sub
        ));
        assert!(is_under(
            &Url::parse("https://h:443/drover/a").expect("url"),
            &sub
        ));
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(check_symlink(Path::new("a/l"), Path::new("../b")).is_ok());
        assert!(check_symlink(Path::new("l"), Path::new("./b/../c")).is_ok());
        assert!(check_symlink(Path::new("l"), Path::new("../x")).is_err());
        assert!(check_symlink(Path::new("a/l"), Path::new("../../x")).is_err());
        assert!(check_symlink(Path::new("l"), Path::new("/etc/passwd")).is_err());
        assert!(check_symlink(Path::new("l"), Path::new("b/../../x")).is_err());
    }

    #[test]
    fn entry_paths() {
        assert_eq!(entry_path(Path::new("./")).expect("ok"), None);
        assert_eq!(
            entry_path(Path::new("./bin/server")).expect("ok"),
            Some(PathBuf::from("bin/server"))
        );
        assert!(entry_path(Path::new("../x")).is_err());
        assert!(entry_path(Path::new("/x")).is_err());
    }
}
