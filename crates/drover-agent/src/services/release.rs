//! Release trees on disk (Roller's idea): each version unpacked beside the others under
//! `releases/<version>/`, the live one named by the `current` symlink, which is switched
//! by renaming a new symlink over it — so a crash leaves either the old or the new
//! release live, never half of each. A release is staged in a temporary directory and
//! renamed into place (or exchanged with the one it replaces) in one step too.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use drover_proto::deploy::RenderedFile;

use super::layout::{InstanceDirs, check_relative};
use super::state::ReleaseRecord;

/// Prefix of temporary names in `releases/` and the instance directory.
const TMP_PREFIX: &str = ".tmp-";

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{TMP_PREFIX}{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A new, empty staging directory in `releases/`.
pub(crate) fn staging_dir(dirs: &InstanceDirs) -> io::Result<PathBuf> {
    let releases = dirs.releases();
    fs::create_dir_all(&releases)?;
    let p = releases.join(unique("stage"));
    fs::create_dir(&p)?;
    Ok(p)
}

/// Removes what a crash may have left: staging and trash directories, temporary links.
pub(crate) fn clean_temporaries(dirs: &InstanceDirs) {
    for dir in [dirs.releases(), dirs.root().to_path_buf()] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().as_bytes().starts_with(TMP_PREFIX.as_bytes()) {
                let p = e.path();
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                let r = if is_dir {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                if let Err(err) = r {
                    tracing::warn!(path = %p.display(), error = %err, "cannot remove a leftover temporary");
                }
            }
        }
    }
}

/// Writes the rendered config files into `dir`. A path must be relative without `..`,
/// and no directory on the way (nor the file itself) may be a symlink, so that a file
/// cannot be written outside `dir` through a link shipped in the artifact.
pub(crate) fn write_config(dir: &Path, files: &[RenderedFile]) -> Result<(), String> {
    for f in files {
        let rel = check_relative("config file", &f.path)?;
        let mut at = dir.to_path_buf();
        let parts: Vec<_> = rel.components().collect();
        let (last, parents) = parts
            .split_last()
            .ok_or_else(|| format!("config file {:?} names no file", f.path))?;
        for part in parents {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(format!(
                        "config file {:?}: {} is a symlink in the artifact; refusing to write through it",
                        f.path,
                        at.strip_prefix(dir).unwrap_or(&at).display()
                    ));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "config file {:?}: {} is a file in the artifact, not a directory",
                        f.path,
                        at.strip_prefix(dir).unwrap_or(&at).display()
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&at).map_err(|e| {
                        format!("config file {:?}: cannot create its directory: {e}", f.path)
                    })?;
                }
                Err(e) => return Err(format!("config file {:?}: {e}", f.path)),
            }
        }
        at.push(last);
        if let Ok(m) = fs::symlink_metadata(&at) {
            if m.file_type().is_symlink() {
                return Err(format!(
                    "config file {:?} is a symlink in the artifact; refusing to write through it",
                    f.path
                ));
            }
            if m.is_dir() {
                return Err(format!(
                    "config file {:?} is a directory in the artifact",
                    f.path
                ));
            }
            fs::remove_file(&at).map_err(|e| format!("config file {:?}: {e}", f.path))?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(&at)
            .map_err(|e| format!("config file {:?}: cannot create it: {e}", f.path))?;
        io::Write::write_all(&mut file, f.content.as_bytes())
            .map_err(|e| format!("config file {:?}: cannot write it: {e}", f.path))?;
    }
    Ok(())
}

/// Swaps two paths atomically (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves `path` aside to a trash name and removes it; gone from its name in one step.
fn remove_tree(path: &Path) -> io::Result<()> {
    let Some(parent) = path.parent() else {
        return fs::remove_dir_all(path);
    };
    let trash = parent.join(unique("trash"));
    match fs::rename(path, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent);
    fs::remove_dir_all(&trash)
}

/// Puts the staged tree at `releases/<version>`, replacing what is there in one step:
/// a rename if nothing is, else an exchange with the old tree (which is then removed).
pub(crate) fn place(dirs: &InstanceDirs, version: &str, staged: &Path) -> io::Result<()> {
    let dest = dirs.release(version);
    match fs::symlink_metadata(&dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::rename(staged, &dest)?;
        }
        Err(e) => return Err(e),
        Ok(_) => {
            exchange(staged, &dest)?;
            // `staged` now holds the old tree.
            if let Err(e) = fs::remove_dir_all(staged) {
                tracing::warn!(path = %staged.display(), error = %e, "cannot remove a replaced release");
            }
        }
    }
    sync_dir(&dirs.releases());
    Ok(())
}

/// Removes `releases/<version>`.
pub(crate) fn remove(dirs: &InstanceDirs, version: &str) -> io::Result<()> {
    remove_tree(&dirs.release(version))
}

/// The version `current` points to, if it is a link to `releases/<version>`.
pub(crate) fn current_version(dirs: &InstanceDirs) -> Option<String> {
    let target = fs::read_link(dirs.current()).ok()?;
    let mut parts = target.components();
    let first = parts.next()?;
    if first.as_os_str() != "releases" {
        return None;
    }
    let version = parts.next()?.as_os_str().to_str()?.to_string();
    parts.next().is_none().then_some(version)
}

/// Points `current` at `releases/<version>` atomically: a new symlink under a
/// temporary name, renamed over `current`.
pub(crate) fn switch_current(dirs: &InstanceDirs, version: &str) -> io::Result<()> {
    let tmp = dirs.root().join(unique("current"));
    symlink(Path::new("releases").join(version), &tmp)?;
    if let Err(e) = fs::rename(&tmp, dirs.current()) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dirs.root());
    Ok(())
}

/// Removes `current`.
pub(crate) fn remove_current(dirs: &InstanceDirs) -> io::Result<()> {
    match fs::remove_file(dirs.current()) {
        Ok(()) => {
            sync_dir(dirs.root());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Which releases to remove so that the newest `keep` stay (never one in `protect`,
/// which count towards `keep`).
pub(crate) fn to_prune(
    records: &BTreeMap<String, ReleaseRecord>,
    keep: u32,
    protect: &[&str],
) -> Vec<String> {
    let mut by_age: Vec<(&String, &ReleaseRecord)> = records.iter().collect();
    // Newest first; ties by version so the choice is stable.
    by_age.sort_by(|a, b| {
        b.1.installed_ms
            .cmp(&a.1.installed_ms)
            .then_with(|| b.0.cmp(a.0))
    });
    let protected = |v: &str| protect.contains(&v);
    let mut kept = records.keys().filter(|v| protected(v)).count();
    let mut remove = Vec::new();
    for (v, _) in by_age {
        if protected(v) {
            continue;
        }
        if kept < keep as usize {
            kept += 1;
        } else {
            remove.push(v.clone());
        }
    }
    remove
}

/// Directories in `releases/` that have no record (an interrupted install's leftovers)
/// and are not protected.
pub(crate) fn unrecorded(
    dirs: &InstanceDirs,
    records: &BTreeMap<String, ReleaseRecord>,
    protect: &[&str],
) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dirs.releases()) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| {
            !n.starts_with('.') && !records.contains_key(n) && !protect.contains(&n.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ms: u64) -> ReleaseRecord {
        ReleaseRecord {
            spec_hash: "h".into(),
            sha256: "s".into(),
            installed_ms: ms,
            fingerprint: None,
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_the_protected() {
        let records: BTreeMap<String, ReleaseRecord> = [
            ("1".to_string(), rec(1)),
            ("2".to_string(), rec(2)),
            ("3".to_string(), rec(3)),
            ("4".to_string(), rec(4)),
        ]
        .into();
        assert_eq!(to_prune(&records, 2, &["4"]), vec!["2", "1"]);
        // The live one is old: it stays, and counts.
        assert_eq!(to_prune(&records, 2, &["4", "1"]), vec!["3", "2"]);
        assert_eq!(to_prune(&records, 3, &["4", "1"]), vec!["2"]);
        assert_eq!(to_prune(&records, 0, &["1"]), vec!["4", "3", "2"]);
        assert!(to_prune(&records, 10, &[]).is_empty());
    }

    #[test]
    fn current_switches_atomically_and_reads_back() {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs = InstanceDirs::new(root.path(), "web", 0);
        fs::create_dir_all(dirs.release("1")).expect("mkdir");
        fs::create_dir_all(dirs.release("2")).expect("mkdir");
        assert_eq!(current_version(&dirs), None);
        switch_current(&dirs, "1").expect("switch");
        assert_eq!(current_version(&dirs).as_deref(), Some("1"));
        switch_current(&dirs, "2").expect("switch");
        assert_eq!(current_version(&dirs).as_deref(), Some("2"));
        assert!(dirs.current().join(".").is_dir());
        // No temporary link left behind.
        let names: Vec<_> = fs::read_dir(dirs.root())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        remove_current(&dirs).expect("remove");
        assert_eq!(current_version(&dirs), None);
    }

    #[test]
    fn placing_over_an_existing_release_exchanges_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let dirs = InstanceDirs::new(root.path(), "web", 0);
        fs::create_dir_all(dirs.release("1")).expect("mkdir");
        fs::write(dirs.release("1").join("old"), "o").expect("write");
        let staged = staging_dir(&dirs).expect("stage");
        fs::write(staged.join("new"), "n").expect("write");
        place(&dirs, "1", &staged).expect("place");
        assert!(dirs.release("1").join("new").exists());
        assert!(!dirs.release("1").join("old").exists());
        assert!(!staged.exists());
    }

    #[test]
    fn config_is_not_written_through_symlinks() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let rel = root.path().join("r");
        fs::create_dir(&rel).expect("mkdir");
        symlink(outside.path(), rel.join("etc")).expect("symlink");
        let files = vec![RenderedFile {
            path: "etc/app.conf".into(),
            content: "x".into(),
        }];
        let err = write_config(&rel, &files).expect_err("refused");
        assert!(err.contains("symlink"), "{err}");
        assert!(!outside.path().join("app.conf").exists());
        let ok = vec![RenderedFile {
            path: "conf/deep/app.conf".into(),
            content: "port=1\n".into(),
        }];
        write_config(&rel, &ok).expect("written");
        assert_eq!(
            fs::read_to_string(rel.join("conf/deep/app.conf")).expect("read"),
            "port=1\n"
        );
    }
}
