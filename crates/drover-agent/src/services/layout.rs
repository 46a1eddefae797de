//! Where an instance lives under the state dir, and the checks that keep names from the
//! controller safe to use as paths.
//!
//! ```text
//! <state dir>/artifacts/<sha256>.tar.gz            downloaded artifacts, by digest
//! <state dir>/services/<service>/<index>/
//!     releases/<version>/                          unpacked artifact + rendered config
//!     current -> releases/<version>                the live release (switched by rename)
//!     state.json                                   what the agent knows (written atomically)
//!     fingerprints/<version>-<digest>.json         each release's files as installed
//!     logs/{stdout,stderr}.log[.1]                 the process's output, size-bounded
//! ```

use std::path::{Component, Path, PathBuf};

/// The paths of one instance.
#[derive(Debug, Clone)]
pub(crate) struct InstanceDirs {
    root: PathBuf,
}

impl InstanceDirs {
    /// The directory of instance `index` of `service` under `services_root`. The names
    /// must have passed [`check_name`].
    pub(crate) fn new(services_root: &Path, service: &str, index: u32) -> InstanceDirs {
        InstanceDirs {
            root: services_root.join(service).join(index.to_string()),
        }
    }

    /// `services/<service>/<index>`.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `…/releases`.
    pub(crate) fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }

    /// `…/releases/<version>`.
    pub(crate) fn release(&self, version: &str) -> PathBuf {
        self.releases().join(version)
    }

    /// `…/current`, the symlink to the live release.
    pub(crate) fn current(&self) -> PathBuf {
        self.root.join("current")
    }

    /// `…/state.json`.
    pub(crate) fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// `…/fingerprints`.
    pub(crate) fn fingerprints(&self) -> PathBuf {
        self.root.join("fingerprints")
    }

    /// `…/fingerprints/<version>-<digest>.json`, the file list of a release whose
    /// fingerprint has `digest`.
    pub(crate) fn fingerprint(&self, version: &str, digest: &str) -> PathBuf {
        self.fingerprints().join(fingerprint_name(version, digest))
    }

    /// `…/logs`.
    pub(crate) fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `…/logs/stdout.log`.
    pub(crate) fn stdout_log(&self) -> PathBuf {
        self.logs().join("stdout.log")
    }

    /// `…/logs/stderr.log`.
    pub(crate) fn stderr_log(&self) -> PathBuf {
        self.logs().join("stderr.log")
    }
}

/// The file name of a release's fingerprint.
pub(crate) fn fingerprint_name(version: &str, digest: &str) -> String {
    format!("{version}-{digest}.json")
}

/// Checks that `value` (a service name or a version) can be one path component:
/// 1 to 200 bytes, no `/`, no control characters or white space, not starting with a
/// dot (which also rules out `.` and `..`, and keeps clear of the agent's temporary
/// names).
pub(crate) fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > 200 {
        return Err(format!(
            "{what} {value:?} is {} bytes long (at most 200)",
            value.len()
        ));
    }
    if value.starts_with('.') {
        return Err(format!("{what} {value:?} starts with a dot"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| *c == '/' || *c == '\\' || c.is_control() || c.is_whitespace())
    {
        return Err(format!("{what} {value:?} contains {c:?}"));
    }
    Ok(())
}

/// Checks a path that must stay inside a directory: relative, not empty, no `..`.
/// Returns its normal components joined (without `.` components).
pub(crate) fn check_relative(what: &str, path: &str) -> Result<PathBuf, String> {
    if path.contains('\0') {
        return Err(format!("{what} {path:?} contains a NUL byte"));
    }
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("{what} {path:?} contains '..'"));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{what} {path:?} is absolute"));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!("{what} {path:?} names no file"));
    }
    Ok(out)
}

/// Checks and normalises (lower-case) a hex SHA-256 digest.
pub(crate) fn check_sha256(digest: &str) -> Result<String, String> {
    let d = digest.trim().to_ascii_lowercase();
    if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "artifact sha256 {digest:?} is not 64 hexadecimal digits"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_for_one_path_component() {
        for good in ["web", "api-gw_2", "1.2.3", "v2+build.7", "ÄÖ"] {
            assert!(check_name("version", good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "a\nb",
            &"x".repeat(201),
        ] {
            assert!(check_name("version", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            check_name("service", "a/b").unwrap_err(),
            "service \"a/b\" contains '/'"
        );
    }

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(
            check_relative("config file", "./etc/app.conf").expect("ok"),
            PathBuf::from("etc/app.conf")
        );
        assert!(check_relative("config file", "/etc/passwd").is_err());
        assert!(check_relative("config file", "a/../../x").is_err());
        assert!(check_relative("config file", "./").is_err());
        assert!(check_relative("config file", "").is_err());
    }

    #[test]
    fn digests_are_checked_and_lowered() {
        let d = "AB".repeat(32);
        assert_eq!(check_sha256(&d).expect("ok"), "ab".repeat(32));
        assert!(check_sha256("abc").is_err());
        assert!(check_sha256(&"zz".repeat(32)).is_err());
    }
}
