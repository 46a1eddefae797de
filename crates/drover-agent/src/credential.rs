//! The agent's identity, kept in `<state dir>/credential.json`.
//!
//! Written once after enrollment (atomically, mode 0600) and read on every start, so a
//! restarted agent is the same host to the controller.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::fsutil;

/// File name of the identity inside the state dir.
pub(crate) const FILE_NAME: &str = "credential.json";

/// What the agent keeps of its enrollment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credential {
    /// Stable host identity given by the controller.
    pub(crate) host_id: String,
    /// Host name as the controller stored it.
    pub(crate) name: String,
    /// Secret the agent authenticates with.
    pub(crate) credential: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("host_id", &self.host_id)
            .field("name", &self.name)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// Path of the identity file in `state_dir`.
pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Reads the identity from `state_dir`: `Ok(None)` if the agent never enrolled there.
pub(crate) fn load(state_dir: &Path) -> anyhow::Result<Option<Credential>> {
    let p = path(state_dir);
    let text = match fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
    };
    let cred: Credential = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a drover agent credential (remove it to enroll again)",
            p.display()
        )
    })?;
    if cred.credential.is_empty() || cred.host_id.is_empty() {
        anyhow::bail!(
            "{}: host_id and credential must not be empty (remove it to enroll again)",
            p.display()
        );
    }
    if let Ok(meta) = fs::metadata(&p) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %p.display(),
                mode = format!("{mode:o}"),
                "credential file is readable by other users; restricting it to 0600"
            );
            if let Err(e) = fs::set_permissions(&p, fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %p.display(), error = %e, "cannot restrict credential file");
            }
        }
    }
    Ok(Some(cred))
}

/// Stores the identity in `state_dir` atomically with mode 0600.
pub(crate) fn save(state_dir: &Path, cred: &Credential) -> anyhow::Result<()> {
    let p = path(state_dir);
    let mut bytes = serde_json::to_vec_pretty(cred).context("cannot encode the credential")?;
    bytes.push(b'\n');
    fsutil::write_atomic(&p, &bytes, 0o600).with_context(|| format!("cannot write {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credential {
        Credential {
            host_id: "h-1".into(),
            name: "web-1".into(),
            credential: "s3cret".into(),
        }
    }

    #[test]
    fn saved_credential_is_0600_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()).expect("load"), None);
        save(dir.path(), &sample()).expect("save");
        let mode = fs::metadata(path(dir.path()))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(dir.path()).expect("load"), Some(sample()));
    }

    #[test]
    fn garbage_credential_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(path(dir.path()), "{not json").expect("write");
        let err = load(dir.path()).expect_err("must fail");
        assert!(format!("{err:#}").contains("credential.json"), "{err:#}");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = format!("{:?}", sample());
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("h-1"));
    }

    #[test]
    fn loose_permissions_are_tightened() {
        let dir = tempfile::tempdir().expect("tempdir");
        save(dir.path(), &sample()).expect("save");
        fs::set_permissions(path(dir.path()), fs::Permissions::from_mode(0o644)).expect("chmod");
        load(dir.path()).expect("load");
        let mode = fs::metadata(path(dir.path()))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
