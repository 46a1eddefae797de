//! Release fingerprints: what the files of a release were when it was installed, so that
//! a later change to them (a file edited, replaced, chmod-ed or deleted by someone) is
//! reported as drift.
//!
//! A fingerprint lists every regular file and symlink that the artifact and the config
//! files put into the release directory (directories themselves are not listed), each
//! by its relative path with its kind, size, mode and the SHA-256 of its content (of its
//! target for a symlink). One SHA-256 over all of them, in path order, names the whole.
//!
//! A check looks at the listed files only. A listed file has drifted when its content,
//! mode or kind differs, or when it is missing (also when a directory on its way was
//! replaced by a symlink or a file). Files that were not listed are ignored: a service
//! may write into its release directory (a start script's `hello.pid`, a log) without
//! drifting.
//!
//! Checks are cheap: a file is hashed again only when its stat stamp (device, inode,
//! mode, size, mtime, ctime) differs from the one seen when it was last hashed. A stamp is
//! trusted only when its ctime was at least [`RACY`] old when it was taken: a change in
//! the same tick of the file system's clock would leave the stamp equal (git's "racy
//! clean" problem), so a file that changed just before it was hashed is hashed once
//! more at the next check. The ctime cannot be set back by the user (`touch -r` sets
//! the mtime only), so restoring an mtime does not hide a change.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil;

/// How old a ctime must be for a stamp to be trusted.
pub(crate) const RACY: Duration = Duration::from_secs(2);
/// At most this many files are named in a drift text.
const NAMED: usize = 5;

/// What a listed path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (seen by a check only, never listed).
    Other,
}

/// What `stat` says of a file; equal stamps mean an unchanged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime_s: i64,
    mtime_ns: i64,
    ctime_s: i64,
    ctime_ns: i64,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            size: m.size(),
            mtime_s: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime_s: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        }
    }

    /// Whether the file's ctime was at least [`RACY`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let (Ok(s), Ok(ns)) = (u64::try_from(self.ctime_s), u32::try_from(self.ctime_ns)) else {
            return false;
        };
        let ctime = SystemTime::UNIX_EPOCH + Duration::new(s, ns.min(999_999_999));
        ctime
            .checked_add(RACY)
            .is_some_and(|trusted_from| trusted_from <= now)
    }
}

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileEntry {
    /// File or symlink.
    pub(crate) kind: Kind,
    /// Size in bytes (of the target path for a symlink).
    pub(crate) size: u64,
    /// Permission bits (`st_mode & 0o7777`).
    pub(crate) mode: u32,
    /// SHA-256 of the content (of the target path for a symlink), hex.
    pub(crate) sha256: String,
    /// The stamp when it was hashed, if trusted then (see [`RACY`]); not part of the
    /// fingerprint's digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) stamp: Option<Stamp>,
}

impl FileEntry {
    /// How `now` differs from `self`: `type`, `content`, `mode`.
    fn differences(&self, now: &FileEntry) -> Vec<&'static str> {
        if self.kind != now.kind {
            return vec!["type"];
        }
        let mut d = Vec::new();
        if self.size != now.size || self.sha256 != now.sha256 {
            d.push("content");
        }
        if self.mode != now.mode {
            d.push("mode");
        }
        d
    }
}

/// The files of a release, as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    /// SHA-256 over every listed file (see [`digest`]), hex.
    pub(crate) sha256: String,
    /// Every listed file, by relative path (as [`encode`]d).
    pub(crate) files: BTreeMap<String, FileEntry>,
}

/// The digest of a file list: SHA-256 of one line `kind mode size sha256 path` per
/// file, in path order. Stamps are left out.
pub(crate) fn digest(files: &BTreeMap<String, FileEntry>) -> String {
    let mut h = Sha256::new();
    for (path, e) in files {
        let kind = match e.kind {
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
        };
        // Encoded paths hold no control characters, so a line is one file.
        h.update(format!("{kind} {:o} {} {} {path}\n", e.mode, e.size, e.sha256).as_bytes());
    }
    hex::encode(h.finalize())
}

/// A relative path as text: its bytes as UTF-8, with `%`, control characters and bytes
/// that are not UTF-8 written as `%XX`. [`decode`] reverses it.
pub(crate) fn encode(rel: &Path) -> String {
    let mut out = String::new();
    for chunk in rel.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' || c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path [`encode`] made `text` from.
pub(crate) fn decode(text: &str) -> Result<PathBuf, String> {
    let bad = || format!("{text:?} is not an encoded path");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&out));
    // Only plain relative paths are ever listed.
    let plain = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if path.as_os_str().is_empty() || !plain {
        return Err(bad());
    }
    Ok(path)
}

/// Every regular file and symlink under `dir` (symlinks are not followed), as encoded
/// relative paths, sorted.
pub(crate) fn walk(dir: &Path) -> io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            let t = entry.file_type()?;
            if t.is_dir() {
                stack.push(path);
            } else if t.is_file() || t.is_symlink() {
                found.push(encode(&path));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Hashes what `r` yields.
fn hash_reader(mut r: impl Read) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex::encode(h.finalize()))
}

/// Whether `e` means that the path is not there.
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Reads the file at `path` as it is now (hashing it); `Ok(None)` if it is missing.
/// The stamp is kept only if it can be trusted at `now`.
fn observe(path: &Path, now: SystemTime) -> io::Result<Option<FileEntry>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let t = meta.file_type();
    let (kind, meta, sha256, size) = if t.is_symlink() {
        let target = fs::read_link(path)?;
        let bytes = target.as_os_str().as_bytes();
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        (
            Kind::Symlink,
            meta,
            hex::encode(Sha256::digest(bytes)),
            size,
        )
    } else if t.is_file() {
        // No following a link swapped in, no blocking on a FIFO swapped in.
        let f = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = f.metadata()?;
        if !meta.is_file() {
            return Ok(Some(FileEntry {
                kind: Kind::Other,
                size: 0,
                mode: meta.mode() & 0o7777,
                sha256: String::new(),
                stamp: None,
            }));
        }
        // What is appended while it is read is left for the next check (its stamp changed).
        let sha = hash_reader(f.take(meta.size()))?;
        let size = meta.size();
        (Kind::File, meta, sha, size)
    } else {
        (Kind::Other, meta, String::new(), 0)
    };
    let stamp = Stamp::of(&meta);
    Ok(Some(FileEntry {
        kind,
        size,
        mode: meta.mode() & 0o7777,
        sha256,
        stamp: stamp.settled(now).then_some(stamp),
    }))
}

/// Fingerprints the files `paths` (encoded, relative) of `dir`. Paths that are missing
/// or no longer files or symlinks are left out.
pub(crate) fn take<'a>(
    dir: &Path,
    paths: impl IntoIterator<Item = &'a String>,
    now: SystemTime,
) -> io::Result<Fingerprint> {
    let mut files = BTreeMap::new();
    for p in paths {
        let rel = decode(p).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let entry = observe(&dir.join(rel), now)
            .map_err(|e| io::Error::new(e.kind(), format!("{p}: {e}")))?;
        if let Some(e) = entry.filter(|e| e.kind != Kind::Other) {
            files.insert(p.clone(), e);
        }
    }
    Ok(Fingerprint {
        sha256: digest(&files),
        files,
    })
}

/// Fingerprints every regular file and symlink under `dir`.
pub(crate) fn take_all(dir: &Path, now: SystemTime) -> io::Result<Fingerprint> {
    let paths = walk(dir)?;
    take(dir, &paths, now)
}

/// What a check found.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Verdict {
    /// Each changed file with how (`content`, `mode`, `type`, `missing`, or
    /// `unreadable: …`), in path order.
    pub(crate) changes: Vec<(String, Vec<String>)>,
    /// Files whose content was read.
    pub(crate) hashed: u64,
    /// Stamps of the fingerprint were filled in (worth saving it again).
    pub(crate) settled: bool,
}

impl Verdict {
    /// The drift text, if something changed: `release files changed: bin/server
    /// (content), conf/app.conf (missing) and 3 more`.
    pub(crate) fn drift(&self) -> Option<String> {
        if self.changes.is_empty() {
            return None;
        }
        let named: Vec<String> = self
            .changes
            .iter()
            .take(NAMED)
            .map(|(p, how)| format!("{p} ({})", how.join(", ")))
            .collect();
        let mut text = format!("release files changed: {}", named.join(", "));
        if self.changes.len() > NAMED {
            text.push_str(&format!(" and {} more", self.changes.len() - NAMED));
        }
        Some(text)
    }
}

/// A fingerprint and what the checks since have seen of its files.
#[derive(Debug)]
pub(crate) struct Watch {
    base: Fingerprint,
    /// The last observation of each listed file (with its stamp if trusted).
    seen: HashMap<String, FileEntry>,
}

impl Watch {
    /// Starts watching the files of `base`.
    pub(crate) fn new(base: Fingerprint) -> Watch {
        let seen = base
            .files
            .iter()
            .filter(|(_, e)| e.stamp.is_some())
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect();
        Watch { base, seen }
    }

    /// The fingerprint.
    pub(crate) fn base(&self) -> &Fingerprint {
        &self.base
    }

    /// Compares the listed files of `dir` with the fingerprint, hashing only those
    /// whose stamp changed.
    pub(crate) fn check(&mut self, dir: &Path, now: SystemTime) -> Verdict {
        let mut v = Verdict::default();
        // Directories on the way that are real directories (not replaced by a link).
        let mut dirs_ok: HashMap<PathBuf, bool> = HashMap::new();
        for (p, base) in self.base.files.iter_mut() {
            let how = match decode(p) {
                Err(e) => vec![format!("unreadable: {e}")],
                Ok(rel) if !parents_are_dirs(dir, &rel, &mut dirs_ok) => {
                    self.seen.remove(p);
                    vec!["missing".to_string()]
                }
                Ok(rel) => {
                    let path = dir.join(rel);
                    match current(&path, self.seen.get(p), now, &mut v.hashed) {
                        Ok(None) => {
                            self.seen.remove(p);
                            vec!["missing".to_string()]
                        }
                        Err(e) => {
                            self.seen.remove(p);
                            vec![format!("unreadable: {e}")]
                        }
                        Ok(Some(now_entry)) => {
                            let how: Vec<String> = base
                                .differences(&now_entry)
                                .into_iter()
                                .map(str::to_string)
                                .collect();
                            if how.is_empty() && base.stamp.is_none() && now_entry.stamp.is_some() {
                                base.stamp = now_entry.stamp;
                                v.settled = true;
                            }
                            if now_entry.stamp.is_some() {
                                self.seen.insert(p.clone(), now_entry);
                            } else {
                                self.seen.remove(p);
                            }
                            how
                        }
                    }
                }
            };
            if !how.is_empty() {
                v.changes.push((p.clone(), how));
            }
        }
        v
    }
}

/// The file at `path` now: the last observation `seen` if its stamp still matches,
/// otherwise read again (counted in `hashed`).
fn current(
    path: &Path,
    seen: Option<&FileEntry>,
    now: SystemTime,
    hashed: &mut u64,
) -> io::Result<Option<FileEntry>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if let Some(s) = seen
        && s.stamp == Some(Stamp::of(&meta))
    {
        return Ok(Some(s.clone()));
    }
    if meta.is_file() {
        *hashed += 1;
    }
    observe(path, now)
}

/// Whether every directory between `dir` and `rel` is a directory (no symlink, no file).
fn parents_are_dirs(dir: &Path, rel: &Path, known: &mut HashMap<PathBuf, bool>) -> bool {
    let mut at = PathBuf::new();
    let Some(parent) = rel.parent() else {
        return true;
    };
    for c in parent.components() {
        at.push(c);
        let ok = *known
            .entry(at.clone())
            .or_insert_with(|| fs::symlink_metadata(dir.join(&at)).is_ok_and(|m| m.is_dir()));
        if !ok {
            return false;
        }
    }
    true
}

/// Writes a fingerprint (atomically).
pub(crate) fn save(path: &Path, fp: &Fingerprint) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let bytes = serde_json::to_vec(fp).map_err(io::Error::other)?;
    fsutil::write_atomic(path, &bytes, 0o600)
}

/// Reads the fingerprint at `path`, which must have digest `expected` (as recorded in
/// `state.json`) and match its file list.
pub(crate) fn load(path: &Path, expected: &str) -> Result<Fingerprint, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let fp: Fingerprint = serde_json::from_slice(&bytes)
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    if fp.sha256 != expected || digest(&fp.files) != expected {
        return Err(format!(
            "{} does not hold fingerprint {expected}",
            path.display()
        ));
    }
    if let Some(bad) = fp.files.keys().find(|p| decode(p).is_err()) {
        return Err(format!("{} lists a bad path {bad:?}", path.display()));
    }
    Ok(fp)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    /// Long after every file here was written: every stamp is trusted.
    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    fn release() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path();
        fs::create_dir_all(p.join("bin")).expect("mkdir");
        fs::create_dir_all(p.join("conf/deep")).expect("mkdir");
        fs::write(p.join("bin/server"), "#!/bin/sh\n").expect("write");
        fs::set_permissions(p.join("bin/server"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::write(p.join("conf/deep/app.conf"), "port=1\n").expect("write");
        fs::write(p.join("version.txt"), "1").expect("write");
        symlink("bin/server", p.join("run")).expect("symlink");
        fs::create_dir(p.join("empty")).expect("mkdir");
        d
    }

    /// Lets the file system's clock tick on: these tests trust every stamp at once, so
    /// a change must not fall into the tick of the one before.
    fn tick() {
        std::thread::sleep(Duration::from_millis(30));
    }

    fn check(w: &mut Watch, dir: &Path) -> Verdict {
        w.check(dir, later())
    }

    #[test]
    fn paths_are_encoded_reversibly() {
        for raw in [
            &b"bin/server"[..],
            b"100%/done",
            b"new\nline",
            b"caf\xc3\xa9",
            b"bad\xff\xfebytes",
        ] {
            let p = PathBuf::from(std::ffi::OsStr::from_bytes(raw));
            let text = encode(&p);
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert_eq!(decode(&text).expect("decode"), p, "{text}");
        }
        assert_eq!(encode(Path::new("100%")), "100%25");
        assert_eq!(encode(Path::new("a\nb")), "a%0Ab");
        for bad in ["", "%", "%G0", "%+1", "/etc/passwd", "a/../b", "%2E%2E/x"] {
            assert!(decode(bad).is_err(), "{bad:?} decoded");
        }
    }

    #[test]
    fn fingerprint_lists_files_and_links_and_names_the_whole() {
        let d = release();
        let fp = take_all(d.path(), later()).expect("take");
        let paths: Vec<&str> = fp.files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            vec!["bin/server", "conf/deep/app.conf", "run", "version.txt"]
        );
        let server = &fp.files["bin/server"];
        assert_eq!(
            (server.kind, server.size, server.mode),
            (Kind::File, 10, 0o755)
        );
        assert_eq!(
            server.sha256,
            hex::encode(Sha256::digest(b"#!/bin/sh\n")),
            "content hash"
        );
        let link = &fp.files["run"];
        assert_eq!(link.kind, Kind::Symlink);
        assert_eq!(link.sha256, hex::encode(Sha256::digest(b"bin/server")));
        assert_eq!(fp.sha256, digest(&fp.files));
        // Same tree, same digest; any change, another.
        let again = take_all(d.path(), later()).expect("take");
        assert_eq!(again.sha256, fp.sha256);
        fs::set_permissions(
            d.path().join("version.txt"),
            fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        assert_ne!(take_all(d.path(), later()).expect("take").sha256, fp.sha256);
    }

    #[test]
    fn changes_are_named_and_cleared_when_restored() {
        let d = release();
        let p = d.path();
        let mut w = Watch::new(take_all(p, later()).expect("take"));
        assert_eq!(check(&mut w, p), Verdict::default());

        tick();
        fs::write(p.join("bin/server"), "#!/bin/sh\nevil\n").expect("write");
        fs::remove_file(p.join("conf/deep/app.conf")).expect("rm");
        fs::set_permissions(p.join("version.txt"), fs::Permissions::from_mode(0o666))
            .expect("chmod");
        fs::write(p.join("hello.pid"), "42").expect("a new file");
        let v = check(&mut w, p);
        assert_eq!(
            v.drift().as_deref(),
            Some(
                "release files changed: bin/server (content), conf/deep/app.conf (missing), \
                 version.txt (mode)"
            )
        );

        tick();
        fs::write(p.join("bin/server"), "#!/bin/sh\n").expect("write");
        fs::write(p.join("conf/deep/app.conf"), "port=1\n").expect("write");
        fs::set_permissions(p.join("version.txt"), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let v = check(&mut w, p);
        assert_eq!(v.drift(), None, "{v:?}");
    }

    #[test]
    fn a_replaced_kind_or_a_linked_directory_is_drift() {
        let d = release();
        let p = d.path();
        let mut w = Watch::new(take_all(p, later()).expect("take"));
        tick();
        // A link now where a file was; a directory swapped for a link to a copy.
        fs::remove_file(p.join("version.txt")).expect("rm");
        symlink("bin/server", p.join("version.txt")).expect("symlink");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(elsewhere.path().join("deep")).expect("mkdir");
        fs::write(elsewhere.path().join("deep/app.conf"), "port=1\n").expect("write");
        fs::rename(p.join("conf"), p.join("conf.old")).expect("mv");
        symlink(elsewhere.path(), p.join("conf")).expect("symlink");
        // The link itself retargeted.
        fs::remove_file(p.join("run")).expect("rm");
        symlink("/bin/sh", p.join("run")).expect("symlink");
        let v = check(&mut w, p);
        assert_eq!(
            v.drift().as_deref(),
            Some(
                "release files changed: conf/deep/app.conf (missing), run (content), \
                 version.txt (type)"
            )
        );
    }

    #[test]
    fn at_most_five_files_are_named() {
        let d = tempfile::tempdir().expect("tempdir");
        for i in 0..8 {
            fs::write(d.path().join(format!("f{i}")), "x").expect("write");
        }
        let mut w = Watch::new(take_all(d.path(), later()).expect("take"));
        tick();
        for i in 0..8 {
            fs::write(d.path().join(format!("f{i}")), "y").expect("write");
        }
        assert_eq!(
            check(&mut w, d.path()).drift().as_deref(),
            Some(
                "release files changed: f0 (content), f1 (content), f2 (content), \
                 f3 (content), f4 (content) and 3 more"
            )
        );
    }

    #[test]
    fn untouched_files_are_not_hashed_again() {
        let d = tempfile::tempdir().expect("tempdir");
        for i in 0..1000 {
            let sub = d.path().join(format!("d{}", i % 10));
            fs::create_dir_all(&sub).expect("mkdir");
            fs::write(sub.join(format!("f{i}")), format!("file {i}\n")).expect("write");
        }
        let fp = take_all(d.path(), later()).expect("take");
        assert_eq!(fp.files.len(), 1000);
        let mut w = Watch::new(fp);
        for _ in 0..3 {
            let v = check(&mut w, d.path());
            assert_eq!((v.changes.len(), v.hashed), (0, 0), "untouched: stat only");
        }
        // One file rewritten with the same content: hashed once, no drift, and then
        // trusted again.
        tick();
        fs::write(d.path().join("d7/f7"), "file 7\n").expect("write");
        let v = check(&mut w, d.path());
        assert_eq!((v.changes.len(), v.hashed), (0, 1));
        assert_eq!(check(&mut w, d.path()).hashed, 0);
        // Changed: hashed once, then its new stamp is remembered (still drift, still
        // named).
        tick();
        fs::write(d.path().join("d3/f3"), "changed\n").expect("write");
        let v = check(&mut w, d.path());
        assert_eq!(v.hashed, 1);
        assert_eq!(
            v.drift().as_deref(),
            Some("release files changed: d3/f3 (content)")
        );
        let v = check(&mut w, d.path());
        assert_eq!(v.hashed, 0);
        assert_eq!(
            v.drift().as_deref(),
            Some("release files changed: d3/f3 (content)")
        );
    }

    #[test]
    fn fresh_stamps_are_not_trusted_until_they_settle() {
        let d = tempfile::tempdir().expect("tempdir");
        fs::write(d.path().join("a"), "a").expect("write");
        let written = SystemTime::now();
        // Taken right after the write: the same clock tick could hold another change.
        let fp = take_all(d.path(), written).expect("take");
        assert_eq!(fp.files["a"].stamp, None);
        let mut w = Watch::new(fp);
        let v = w.check(d.path(), written);
        assert_eq!(
            (v.hashed, v.settled),
            (1, false),
            "still racy: hashed again"
        );
        let v = w.check(d.path(), written + RACY + Duration::from_secs(1));
        assert_eq!((v.hashed, v.settled), (1, true), "settled: stamp kept");
        assert!(w.base().files["a"].stamp.is_some());
        let v = w.check(d.path(), written + RACY + Duration::from_secs(2));
        assert_eq!(v.hashed, 0);
    }

    #[test]
    fn an_mtime_put_back_does_not_hide_a_change() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("a");
        fs::write(&f, "aaaa").expect("write");
        let before = fs::metadata(&f).expect("stat").modified().expect("mtime");
        let mut w = Watch::new(take_all(d.path(), later()).expect("take"));
        tick();
        fs::write(&f, "bbbb").expect("write");
        fs::File::options()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_modified(before))
            .expect("set mtime");
        let v = check(&mut w, d.path());
        assert_eq!(
            v.drift().as_deref(),
            Some("release files changed: a (content)")
        );
    }

    #[test]
    fn saved_fingerprints_are_verified_when_loaded() {
        let d = release();
        let fp = take_all(d.path(), later()).expect("take");
        let state = tempfile::tempdir().expect("tempdir");
        let path = state.path().join("fingerprints/1.json");
        save(&path, &fp).expect("save");
        assert_eq!(load(&path, &fp.sha256).expect("load"), fp);
        let err = load(&path, &"0".repeat(64)).expect_err("other digest");
        assert!(err.contains("does not hold fingerprint"), "{err}");
        let mut forged = fp.clone();
        if let Some(e) = forged.files.get_mut("bin/server") {
            e.sha256 = "0".repeat(64);
        }
        save(&path, &forged).expect("save");
        assert!(
            load(&path, &fp.sha256).is_err(),
            "list does not match digest"
        );
        fs::write(&path, "{").expect("write");
        assert!(
            load(&path, &fp.sha256)
                .expect_err("garbage")
                .contains("cannot parse")
        );
        assert!(
            load(&state.path().join("none.json"), &fp.sha256)
                .expect_err("missing")
                .contains("cannot read")
        );
    }
}
