//! A command's output on its way to the controller.
//!
//! Two pumps (stdout, stderr) read the pipes, cut what they read into chunks
//! ([`Chunker`]: at line ends where possible, at most [`MAX_CHUNK`] bytes, UTF-8 sequences
//! never split, invalid UTF-8 replaced) and push them into one [`OutputBuffer`], which
//! numbers them (`seq` from 0, without gaps across both streams) and hands them out in
//! batches to the command's one ordered sender. The buffer holds at most a fixed number
//! of unsent bytes; beyond that chunks are dropped and replaced by one marker chunk, so
//! that `seq` stays contiguous.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_proto::agent::{OutputChunk, OutputStream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest chunk, in bytes of text.
pub(crate) const MAX_CHUNK: usize = 16 * 1024;
/// Largest batch, in bytes of text (a batch always holds at least one chunk).
pub(crate) const MAX_BATCH: usize = 64 * 1024;
/// How long a batch waits for more output before it is sent.
pub(crate) const LINGER: Duration = Duration::from_millis(20);
/// How long a line without its end waits before it is cut anyway.
pub(crate) const PARTIAL_LINE_WAIT: Duration = Duration::from_millis(20);
/// Most output bytes of one command kept in memory while unsent.
pub(crate) const MAX_UNSENT: usize = 16 * 1024 * 1024;

/// The text of the chunk that stands for dropped output.
pub(crate) fn dropped_marker(bytes: u64) -> String {
    format!(
        "[drover-agent: {bytes} bytes of output dropped while the controller was unreachable]\n"
    )
}

/// Cuts a byte stream into text chunks.
#[derive(Debug, Default)]
pub(crate) struct Chunker {
    carry: Vec<u8>,
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Length of the UTF-8 sequence a lead byte starts (1 for ASCII, 0 if not a lead byte).
fn sequence_len(b: u8) -> usize {
    match b {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// The largest cut position `<= at` that does not split a UTF-8 sequence begun before it.
fn safe_cut(buf: &[u8], at: usize) -> usize {
    let at = at.min(buf.len());
    let low = at.saturating_sub(3);
    for i in (low..at).rev() {
        let b = buf[i];
        if is_continuation(b) {
            continue;
        }
        let len = sequence_len(b);
        return if len > 1 && i + len > at { i } else { at };
    }
    at
}

/// Turns bytes into text pieces of at most [`MAX_CHUNK`] bytes each (replacement
/// characters can make the text longer than the bytes).
fn to_pieces(bytes: &[u8], out: &mut Vec<String>) {
    if bytes.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    while rest.len() > MAX_CHUNK {
        let mut cut = MAX_CHUNK;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    out.push(rest.to_string());
}

impl Chunker {
    /// A chunker with nothing pending.
    pub(crate) fn new() -> Chunker {
        Chunker::default()
    }

    /// Adds bytes read from the pipe; returns the chunks that are complete: full lines,
    /// and [`MAX_CHUNK`]-sized pieces of lines longer than that.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.carry.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let rest = &self.carry[start..];
            if rest.len() >= MAX_CHUNK {
                let cut = match rest[..MAX_CHUNK].iter().rposition(|&b| b == b'\n') {
                    Some(p) => p + 1,
                    None => match safe_cut(rest, MAX_CHUNK) {
                        0 => MAX_CHUNK,
                        c => c,
                    },
                };
                to_pieces(&rest[..cut], &mut out);
                start += cut;
                continue;
            }
            if let Some(p) = rest.iter().rposition(|&b| b == b'\n') {
                to_pieces(&rest[..=p], &mut out);
                start += p + 1;
            }
            break;
        }
        self.carry.drain(..start);
        out
    }

    /// Whether a partial line is waiting for its end.
    pub(crate) fn has_partial(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Cuts the partial line now (keeping an incomplete UTF-8 sequence at its end).
    pub(crate) fn flush_partial(&mut self) -> Vec<String> {
        let cut = safe_cut(&self.carry, self.carry.len());
        let mut out = Vec::new();
        to_pieces(&self.carry[..cut], &mut out);
        self.carry.drain(..cut);
        out
    }

    /// Everything still held, at the end of the stream.
    pub(crate) fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        to_pieces(&self.carry, &mut out);
        self.carry.clear();
        out
    }
}

#[derive(Debug, Default)]
struct BufState {
    queue: VecDeque<OutputChunk>,
    /// Bytes in `queue`.
    queued: usize,
    /// Bytes queued or handed out and not yet acknowledged.
    unsent: usize,
    next_seq: u64,
    dropped: u64,
    closed: bool,
}

impl BufState {
    fn append(&mut self, stream: OutputStream, data: String) {
        let len = data.len();
        self.queue.push_back(OutputChunk {
            seq: self.next_seq,
            stream,
            data,
        });
        self.next_seq += 1;
        self.queued += len;
        self.unsent += len;
    }

    fn append_marker(&mut self) {
        if self.dropped > 0 {
            let marker = dropped_marker(self.dropped);
            self.dropped = 0;
            self.append(OutputStream::Stderr, marker);
        }
    }
}

/// The numbered, bounded queue of one command's output.
#[derive(Debug)]
pub(crate) struct OutputBuffer {
    state: Mutex<BufState>,
    notify: Notify,
    limit: usize,
}

impl OutputBuffer {
    /// A buffer keeping at most `limit` unsent bytes.
    pub(crate) fn new(limit: usize) -> Arc<OutputBuffer> {
        Arc::new(OutputBuffer {
            state: Mutex::new(BufState::default()),
            notify: Notify::new(),
            limit,
        })
    }

    fn lock(&self) -> MutexGuard<'_, BufState> {
        // The state stays consistent even if a holder panicked: each change is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a chunk (or counts it as dropped when the buffer is full).
    pub(crate) fn push(&self, stream: OutputStream, data: String) {
        if data.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.closed {
            return;
        }
        if st.unsent + data.len() > self.limit {
            st.dropped += data.len() as u64;
            return;
        }
        st.append_marker();
        st.append(stream, data);
        drop(st);
        self.notify.notify_one();
    }

    /// No more output will come; numbers the dropped-output marker if one is owed.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        if !st.closed {
            st.append_marker();
            st.closed = true;
        }
        drop(st);
        self.notify.notify_one();
    }

    /// Number of chunks numbered so far (the next `seq`); final once closed.
    pub(crate) fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Waits for the next batch: once output is there, waits up to `linger` for more (or
    /// until `max_bytes` are there, or the buffer is closed) and takes up to `max_bytes`
    /// (at least one chunk). `None` once the buffer is closed and empty. The bytes taken
    /// stay counted as unsent until [`OutputBuffer::acknowledge`].
    pub(crate) async fn next_batch(
        &self,
        max_bytes: usize,
        linger: Duration,
    ) -> Option<Vec<OutputChunk>> {
        loop {
            {
                let st = self.lock();
                if !st.queue.is_empty() {
                    break;
                }
                if st.closed {
                    return None;
                }
            }
            self.notify.notified().await;
        }
        let deadline = Instant::now() + linger;
        loop {
            {
                let st = self.lock();
                if st.queued >= max_bytes || st.closed {
                    break;
                }
            }
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let mut st = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(front) = st.queue.front() {
            if !batch.is_empty() && bytes + front.data.len() > max_bytes {
                break;
            }
            bytes += front.data.len();
            if let Some(c) = st.queue.pop_front() {
                batch.push(c);
            }
        }
        st.queued -= bytes;
        Some(batch)
    }

    /// The controller accepted `bytes` of output: room for more.
    pub(crate) fn acknowledge(&self, bytes: usize) {
        let mut st = self.lock();
        st.unsent = st.unsent.saturating_sub(bytes);
    }
}

/// Reads `reader` to its end (or until `stop`), pushing chunks of `stream` into `buffer`.
pub(crate) async fn pump<R>(
    mut reader: R,
    stream: OutputStream,
    buffer: Arc<OutputBuffer>,
    stop: CancellationToken,
) where
    R: AsyncRead + Unpin,
{
    let mut chunker = Chunker::new();
    let mut buf = vec![0u8; MAX_CHUNK];
    let mut partial_since: Option<Instant> = None;
    loop {
        let partial_deadline = partial_since.map(|t| t + PARTIAL_LINE_WAIT);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = reader.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => {
                    for piece in chunker.push(&buf[..n]) {
                        buffer.push(stream, piece);
                    }
                    partial_since = match (chunker.has_partial(), partial_since) {
                        (false, _) => None,
                        (true, Some(t)) => Some(t),
                        (true, None) => Some(Instant::now()),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(stream = stream.as_str(), error = %e, "cannot read command output");
                    break;
                }
            },
            _ = async {
                match partial_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                for piece in chunker.flush_partial() {
                    buffer.push(stream, piece);
                }
                partial_since = chunker.has_partial().then(Instant::now);
            }
        }
    }
    for piece in chunker.finish() {
        buffer.push(stream, piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_their_ends() {
        let mut c = Chunker::new();
        assert_eq!(c.push(b"one\ntwo\nthr"), vec!["one\ntwo\n".to_string()]);
        assert!(c.has_partial());
        assert_eq!(c.push(b"ee\n"), vec!["three\n".to_string()]);
        assert!(!c.has_partial());
        assert_eq!(c.push(b"tail"), Vec::<String>::new());
        assert_eq!(c.finish(), vec!["tail".to_string()]);
    }

    #[test]
    fn long_output_is_cut_at_line_ends_within_the_limit() {
        let mut c = Chunker::new();
        let line = "x".repeat(99) + "\n";
        let all = line.repeat(500); // 50 000 bytes
        let mut out = c.push(all.as_bytes());
        out.extend(c.finish());
        assert!(
            out.iter()
                .all(|p| p.len() <= MAX_CHUNK && p.ends_with('\n'))
        );
        assert_eq!(out.concat(), all);
        assert!(out.len() >= 4);
    }

    #[test]
    fn a_long_line_is_cut_at_the_limit_without_splitting_utf8() {
        let mut c = Chunker::new();
        // "é" is two bytes; an odd prefix puts a sequence across the 16 KiB mark.
        let text = "a".to_string() + &"é".repeat(20_000);
        let mut out = c.push(text.as_bytes());
        out.extend(c.finish());
        assert!(out.iter().all(|p| p.len() <= MAX_CHUNK));
        assert!(
            out.iter().all(|p| !p.contains('\u{FFFD}')),
            "split sequence"
        );
        assert_eq!(out.concat(), text);
    }

    #[test]
    fn a_sequence_split_across_reads_is_kept_whole() {
        let mut c = Chunker::new();
        let bytes = "€\n".as_bytes(); // 3-byte sequence
        assert!(c.push(&bytes[..1]).is_empty());
        // A partial flush must not emit half a character.
        assert!(c.flush_partial().is_empty());
        assert_eq!(c.push(&bytes[1..]), vec!["€\n".to_string()]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut c = Chunker::new();
        assert_eq!(c.push(b"a\xffb\n"), vec!["a\u{FFFD}b\n".to_string()]);
        // Only garbage, longer than a chunk: still cut, still bounded.
        let junk = vec![0xFFu8; MAX_CHUNK + 10];
        let mut out = c.push(&junk);
        out.extend(c.finish());
        assert!(out.iter().all(|p| p.len() <= MAX_CHUNK));
        let chars: usize = out.iter().map(|p| p.chars().count()).sum();
        assert_eq!(chars, MAX_CHUNK + 10);
    }

    #[tokio::test]
    async fn seq_is_contiguous_and_drops_leave_a_marker() {
        let b = OutputBuffer::new(10);
        b.push(OutputStream::Stdout, "12345".into()); // seq 0
        b.push(OutputStream::Stderr, "678".into()); // seq 1
        b.push(OutputStream::Stdout, "too much".into()); // dropped (8 bytes)
        b.push(OutputStream::Stdout, "xyz".into()); // dropped (3 bytes)
        let batch = b.next_batch(MAX_BATCH, LINGER).await.expect("batch");
        assert_eq!(batch.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![0, 1]);
        b.acknowledge(8);
        b.push(OutputStream::Stdout, "ok".into()); // marker seq 2, then seq 3
        b.close();
        let batch = b.next_batch(MAX_BATCH, LINGER).await.expect("batch");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].seq, 2);
        assert_eq!(batch[0].stream, OutputStream::Stderr);
        assert_eq!(batch[0].data, dropped_marker(11));
        assert_eq!(batch[1].seq, 3);
        assert_eq!(batch[1].data, "ok");
        assert_eq!(b.next_batch(MAX_BATCH, LINGER).await, None);
        assert_eq!(b.next_seq(), 4);
    }

    #[tokio::test]
    async fn marker_is_numbered_at_close_when_output_was_dropped_last() {
        let b = OutputBuffer::new(4);
        b.push(OutputStream::Stdout, "abcd".into());
        b.push(OutputStream::Stdout, "efgh".into());
        b.close();
        let batch = b.next_batch(MAX_BATCH, LINGER).await.expect("batch");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].data, dropped_marker(4));
        assert_eq!(b.next_seq(), 2);
    }

    #[tokio::test]
    async fn batches_respect_the_size_limit() {
        let b = OutputBuffer::new(MAX_UNSENT);
        for _ in 0..10 {
            b.push(OutputStream::Stdout, "x".repeat(MAX_CHUNK));
        }
        b.close();
        let mut sizes = Vec::new();
        while let Some(batch) = b.next_batch(MAX_BATCH, LINGER).await {
            sizes.push(batch.iter().map(|c| c.data.len()).sum::<usize>());
        }
        assert_eq!(sizes, vec![MAX_BATCH, MAX_BATCH, 2 * MAX_CHUNK]);
    }
}
