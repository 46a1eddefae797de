//! A small reader of server-sent events from a streaming HTTP response.

use futures::StreamExt;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    /// `event:` field (`message` when absent).
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// Reads events from a response body.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

impl SseReader {
    /// Wraps a streaming response.
    pub fn new(resp: reqwest::Response) -> SseReader {
        SseReader {
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            event: String::new(),
            data: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream ended.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseMessage>> {
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if !self.data.is_empty() || !self.event.is_empty() {
                        let msg = SseMessage {
                            event: if self.event.is_empty() {
                                "message".to_string()
                            } else {
                                std::mem::take(&mut self.event)
                            },
                            data: std::mem::take(&mut self.data).join("\n"),
                        };
                        return Ok(Some(msg));
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => self.event = value.to_string(),
                    "data" => self.data.push(value.to_string()),
                    _ => {}
                }
            }
            match self.body.next().await {
                Some(chunk) => self.buf.extend_from_slice(&chunk?),
                None => return Ok(None),
            }
        }
    }
}
