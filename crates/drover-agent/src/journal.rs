//! The at-most-once record of commands, in `<state dir>/commands/`.
//!
//! For every command id the agent writes `<id>.started` (durably) before it spawns
//! anything, and `<id>.json` (the [`CommandResult`], atomically) when the command is
//! over. A command id that arrives again is never run again: it is answered from this
//! record. The record is pruned to the newest [`KEEP`] ids.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use drover_proto::agent::{CommandOutcome, CommandResult};

use crate::fsutil;

/// How many command ids the journal keeps.
pub(crate) const KEEP: usize = 2000;

/// Error text recorded for a command that was running when the agent went away.
pub(crate) const RESTARTED: &str = "agent restarted while the command ran";

const STARTED_EXT: &str = ".started";
const RESULT_EXT: &str = ".json";

/// What the journal knows of a command id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    /// Never seen: the command may run.
    New,
    /// Started but no result: the agent stopped while it ran.
    Started,
    /// Over, with this result.
    Finished(CommandResult),
}

/// The command journal of one state dir.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating if needed) the journal under `state_dir`.
    pub(crate) fn open(state_dir: &Path) -> io::Result<Journal> {
        let dir = state_dir.join("commands");
        fsutil::ensure_private_dir(&dir)?;
        Ok(Journal { dir })
    }

    /// Checks that `id` can name journal files: 1 to 200 characters out of
    /// `A-Z a-z 0-9 . _ - :`, not starting with a dot.
    pub(crate) fn check_id(id: &str) -> Result<(), String> {
        if id.is_empty() {
            return Err("command id is empty".into());
        }
        if id.len() > 200 {
            return Err(format!(
                "command id is {} bytes long (at most 200)",
                id.len()
            ));
        }
        if id.starts_with('.') {
            return Err(format!("command id {id:?} starts with a dot"));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
        {
            return Err(format!(
                "command id {id:?} contains {c:?} (allowed: letters, digits, . _ - :)"
            ));
        }
        Ok(())
    }

    fn started_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{STARTED_EXT}"))
    }

    fn result_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{RESULT_EXT}"))
    }

    /// What is recorded for `id` (which must have passed [`Journal::check_id`]).
    pub(crate) fn lookup(&self, id: &str) -> io::Result<Entry> {
        let rp = self.result_path(id);
        match fs::read(&rp) {
            Ok(bytes) => {
                return serde_json::from_slice(&bytes)
                    .map(Entry::Finished)
                    .map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", rp.display()))
                    });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match fs::symlink_metadata(self.started_path(id)) {
            Ok(_) => Ok(Entry::Started),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Entry::New),
            Err(e) => Err(e),
        }
    }

    /// Durably notes that `id` is about to be spawned. Must succeed before the spawn.
    pub(crate) fn mark_started(&self, id: &str) -> io::Result<()> {
        fsutil::create_durable(&self.started_path(id), 0o600)
    }

    /// Records the final result of `id` (atomically).
    pub(crate) fn record(&self, id: &str, result: &CommandResult) -> io::Result<()> {
        let bytes = serde_json::to_vec(result).map_err(io::Error::other)?;
        fsutil::write_atomic(&self.result_path(id), &bytes, 0o600)
    }

    /// The result recorded for a command that was started but never finished.
    pub(crate) fn interrupted_result() -> CommandResult {
        CommandResult {
            outcome: CommandOutcome::Error,
            exit_code: None,
            signal: None,
            duration_ms: 0,
            error: Some(RESTARTED.to_string()),
            chunks: 0,
        }
    }

    /// Answers a [`Entry::Started`] id: records and returns the "agent restarted" result.
    pub(crate) fn resolve_interrupted(&self, id: &str) -> io::Result<CommandResult> {
        let result = Journal::interrupted_result();
        self.record(id, &result)?;
        Ok(result)
    }

    /// Removes all but the newest `keep` ids (by file time), never one in `exclude`.
    /// Returns how many ids were removed.
    pub(crate) fn prune(&self, keep: usize, exclude: &HashSet<String>) -> io::Result<usize> {
        use std::collections::HashMap;
        let mut ids: HashMap<String, SystemTime> = HashMap::new();
        let now = SystemTime::now();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with('.') {
                // A temporary file left by a crash in the middle of an atomic write.
                let old = now
                    .duration_since(modified)
                    .is_ok_and(|age| age > Duration::from_secs(3600));
                if old {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            let id = name
                .strip_suffix(RESULT_EXT)
                .or_else(|| name.strip_suffix(STARTED_EXT));
            if let Some(id) = id {
                let t = ids.entry(id.to_string()).or_insert(modified);
                *t = (*t).max(modified);
            }
        }
        if ids.len() <= keep {
            return Ok(0);
        }
        let mut by_age: Vec<(String, SystemTime)> = ids.into_iter().collect();
        // Newest first; ties broken by id so the order is stable.
        by_age.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        let mut removed = 0;
        for (id, _) in by_age.into_iter().skip(keep) {
            if exclude.contains(&id) {
                continue;
            }
            for p in [self.result_path(&id), self.started_path(&id)] {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_result() -> CommandResult {
        CommandResult {
            outcome: CommandOutcome::Ok,
            exit_code: Some(0),
            signal: None,
            duration_ms: 12,
            error: None,
            chunks: 3,
        }
    }

    #[test]
    fn recorded_result_is_returned_on_redelivery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(dir.path()).expect("open");
        assert_eq!(j.lookup("c1").expect("lookup"), Entry::New);
        j.mark_started("c1").expect("start");
        assert_eq!(j.lookup("c1").expect("lookup"), Entry::Started);
        j.record("c1", &ok_result()).expect("record");
        assert_eq!(
            j.lookup("c1").expect("lookup"),
            Entry::Finished(ok_result())
        );
        // A new journal over the same dir (agent restart) sees the same.
        let j2 = Journal::open(dir.path()).expect("reopen");
        assert_eq!(
            j2.lookup("c1").expect("lookup"),
            Entry::Finished(ok_result())
        );
    }

    #[test]
    fn started_without_result_gives_agent_restarted_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(dir.path()).expect("open");
        j.mark_started("c2").expect("start");
        let j = Journal::open(dir.path()).expect("reopen");
        assert_eq!(j.lookup("c2").expect("lookup"), Entry::Started);
        let r = j.resolve_interrupted("c2").expect("resolve");
        assert_eq!(r.outcome, CommandOutcome::Error);
        assert_eq!(
            r.error.as_deref(),
            Some("agent restarted while the command ran")
        );
        // And it is recorded, so the next delivery gets the very same answer.
        assert_eq!(j.lookup("c2").expect("lookup"), Entry::Finished(r));
    }

    #[test]
    fn corrupt_result_is_an_error_not_a_new_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(dir.path()).expect("open");
        fs::write(dir.path().join("commands/c3.json"), "{").expect("write");
        assert!(j.lookup("c3").is_err());
    }

    #[test]
    fn ids_unfit_for_file_names_are_refused() {
        for bad in ["", ".hidden", "a/b", "../x", "a b", &"x".repeat(201)] {
            assert!(Journal::check_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["0190f3a2-7b1c-7def-8000-000000000001", "cmd_1.2:3"] {
            assert!(Journal::check_id(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn prune_keeps_the_newest_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let j = Journal::open(dir.path()).expect("open");
        let base = SystemTime::now() - Duration::from_secs(1000);
        for i in 0..10u64 {
            let id = format!("c{i}");
            j.mark_started(&id).expect("start");
            j.record(&id, &ok_result()).expect("record");
            for p in [j.started_path(&id), j.result_path(&id)] {
                let f = fs::File::options().write(true).open(&p).expect("open");
                f.set_modified(base + Duration::from_secs(i))
                    .expect("touch");
            }
        }
        let exclude: HashSet<String> = ["c1".to_string()].into();
        let removed = j.prune(4, &exclude).expect("prune");
        assert_eq!(removed, 5);
        for i in 0..10 {
            let id = format!("c{i}");
            let kept = i >= 6 || i == 1;
            assert_eq!(
                j.lookup(&id).expect("lookup") != Entry::New,
                kept,
                "{id} kept={kept}"
            );
        }
    }
}
