//! An instance's log files: `logs/stdout.log` and `logs/stderr.log`, written by the
//! service itself (opened with `O_APPEND` and handed over as its stdout/stderr, so a
//! service never depends on the agent to write its output and keeps running while the
//! agent is away), kept small by the agent ("copy-truncate" into `.1` past the limit,
//! one old file kept), and read back for `drover logs` (last lines, then following).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drover_proto::agent::OutputStream;
use tokio_util::sync::CancellationToken;

use crate::output::{Chunker, OutputBuffer};

/// A log file is rotated once it reaches this size.
pub(crate) const LOG_LIMIT: u64 = 10 * 1024 * 1024;
/// How often a followed log is checked for new lines.
pub(crate) const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Most bytes of one log read for its last lines.
const TAIL_READ_LIMIT: u64 = 16 * 1024 * 1024;

/// The rotated file beside `path` (`stdout.log.1`).
pub(crate) fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Opens `path` for appending (created 0640 if missing), to hand to a process.
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Size of `path`, 0 if missing.
pub(crate) fn size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// If `path` reached `limit`, copies it to `.1` (replacing the old one) and truncates
/// it; the writer's `O_APPEND` descriptor then writes from the start again. Output
/// written between the copy and the truncation is lost (a few lines at most). Returns
/// whether it rotated.
pub(crate) fn rotate_if_needed(path: &Path, limit: u64) -> io::Result<bool> {
    if size(path) < limit {
        return Ok(false);
    }
    let old = rotated(path);
    let mut tmp = old.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::copy(path, &tmp)?;
    fs::rename(&tmp, &old)?;
    fs::OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// The last `n` lines of `bytes` (a last line without its end counts as a line).
pub(crate) fn last_lines(bytes: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &bytes[bytes.len()..];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

/// Reads at most the last [`TAIL_READ_LIMIT`] bytes of `path` (empty if missing), and
/// the offset of the end of what was read.
fn read_end(path: &Path) -> io::Result<(Vec<u8>, u64)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_READ_LIMIT);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(TAIL_READ_LIMIT).read_to_end(&mut buf)?;
    let end = start + buf.len() as u64;
    Ok((buf, end))
}

/// Number of lines in `bytes` (a last line without its end counts).
fn count_lines(bytes: &[u8]) -> usize {
    let ends = bytes.iter().filter(|b| **b == b'\n').count();
    ends + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

/// The last `n` lines of the log at `path`, taking older ones from `.1` when the
/// current file has fewer; and the offset in the current file where they end.
pub(crate) fn tail(path: &Path, n: usize) -> io::Result<(Vec<u8>, u64)> {
    let (current, end) = read_end(path)?;
    let have = count_lines(&current);
    if have >= n {
        return Ok((last_lines(&current, n).to_vec(), end));
    }
    let (older, _) = read_end(&rotated(path))?;
    let mut out = last_lines(&older, n - have).to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(&current);
    Ok((out, end))
}

/// One followed log file.
struct Follower {
    path: PathBuf,
    stream: OutputStream,
    offset: u64,
    chunker: Chunker,
}

impl Follower {
    /// Reads what was appended since the last look into `out`.
    fn poll(&mut self, out: &OutputBuffer) -> io::Result<()> {
        let len = size(&self.path);
        if len < self.offset {
            // Rotated (copied to .1 and truncated): first what .1 has past our offset.
            let old = rotated(&self.path);
            if size(&old) > self.offset {
                let bytes = read_range(&old, self.offset, size(&old))?;
                self.push(&bytes, out);
            }
            self.offset = 0;
        }
        let len = size(&self.path);
        if len > self.offset {
            let bytes = read_range(&self.path, self.offset, len)?;
            self.offset += bytes.len() as u64;
            self.push(&bytes, out);
        } else if self.chunker.has_partial() {
            for piece in self.chunker.flush_partial() {
                out.push(self.stream, piece);
            }
        }
        Ok(())
    }

    fn push(&mut self, bytes: &[u8], out: &OutputBuffer) {
        for piece in self.chunker.push(bytes) {
            out.push(self.stream, piece);
        }
    }
}

fn read_range(path: &Path, from: u64, to: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    f.take(to.saturating_sub(from)).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Pushes `bytes` into `out` as chunks of `stream`.
pub(crate) fn push_text(out: &OutputBuffer, stream: OutputStream, bytes: &[u8]) {
    let mut c = Chunker::new();
    for piece in c.push(bytes).into_iter().chain(c.finish()) {
        out.push(stream, piece);
    }
}

/// How a log stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// The last lines were sent (no follow).
    Done,
    /// Followed until cancelled.
    Cancelled,
}

/// Sends the last `tail` lines of `stdout` and `stderr` into `out`, then with `follow`
/// every new line until `cancel`.
pub(crate) async fn stream(
    stdout: PathBuf,
    stderr: PathBuf,
    tail_lines: usize,
    follow: bool,
    out: Arc<OutputBuffer>,
    cancel: CancellationToken,
) -> io::Result<StreamEnd> {
    let mut followers = Vec::new();
    for (path, stream) in [
        (stdout, OutputStream::Stdout),
        (stderr, OutputStream::Stderr),
    ] {
        let p = path.clone();
        let (text, offset) = tokio::task::spawn_blocking(move || tail(&p, tail_lines))
            .await
            .map_err(io::Error::other)??;
        push_text(&out, stream, &text);
        followers.push(Follower {
            path,
            stream,
            offset,
            chunker: Chunker::new(),
        });
    }
    if !follow {
        return Ok(StreamEnd::Done);
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(StreamEnd::Cancelled),
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
        }
        for f in &mut followers {
            if let Err(e) = f.poll(&out) {
                tracing::debug!(path = %f.path.display(), error = %e, "cannot read a followed log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }

    #[test]
    fn rotation_keeps_one_old_file_and_tail_reaches_into_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("stdout.log");
        let mut f = open_append(&p).expect("open");
        use std::io::Write;
        for i in 0..10 {
            writeln!(f, "line {i}").expect("write");
        }
        assert!(!rotate_if_needed(&p, 1000).expect("check"));
        assert!(rotate_if_needed(&p, 10).expect("rotate"));
        assert_eq!(size(&p), 0);
        // The writer's descriptor appends at the new end.
        writeln!(f, "line 10").expect("write");
        assert_eq!(fs::read_to_string(&p).expect("read"), "line 10\n");
        let (t, off) = tail(&p, 3).expect("tail");
        assert_eq!(String::from_utf8_lossy(&t), "line 8\nline 9\nline 10\n");
        assert_eq!(off, 8);
        // Rotating again replaces the old file.
        assert!(rotate_if_needed(&p, 1).expect("rotate"));
        assert_eq!(fs::read_to_string(rotated(&p)).expect("read"), "line 10\n");
    }

    #[tokio::test]
    async fn follow_sees_appended_lines_and_survives_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_p = dir.path().join("stdout.log");
        let err_p = dir.path().join("stderr.log");
        fs::write(&out_p, "old 1\nold 2\n").expect("write");
        let out = OutputBuffer::new(1 << 20);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(stream(
            out_p.clone(),
            err_p.clone(),
            1,
            true,
            out.clone(),
            cancel.clone(),
        ));
        let mut text = String::new();
        let collect = async |text: &mut String, want: &str| {
            for _ in 0..100 {
                if text.contains(want) {
                    return;
                }
                if let Ok(Some(b)) = tokio::time::timeout(
                    Duration::from_millis(100),
                    out.next_batch(1 << 20, Duration::ZERO),
                )
                .await
                {
                    for c in b {
                        text.push_str(&c.data);
                    }
                }
            }
            panic!("never saw {want:?} in {text:?}");
        };
        collect(&mut text, "old 2\n").await;
        assert!(!text.contains("old 1"));
        let mut f = open_append(&out_p).expect("open");
        use std::io::Write;
        writeln!(f, "new 1").expect("write");
        collect(&mut text, "new 1\n").await;
        writeln!(f, "new 2").expect("write");
        rotate_if_needed(&out_p, 1).expect("rotate");
        writeln!(f, "new 3").expect("write");
        collect(&mut text, "new 3\n").await;
        assert!(text.contains("new 2\n"), "{text}");
        cancel.cancel();
        assert_eq!(task.await.expect("join").expect("ok"), StreamEnd::Cancelled);
    }
}
