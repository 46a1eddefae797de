//! A minimal blocking HTTP/1.1 client for loopback: one request per connection
//! (`Connection: close`), every read and write under a timeout. Enough for the controller's
//! JSON API and the demo services' `GET /`; nothing else is spoken to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// Connecting may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Each read or write may block this long.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// A response larger than this is refused.
const MAX_RESPONSE: usize = 64 << 20;

/// A server on loopback, with an optional bearer token.
#[derive(Debug, Clone)]
pub struct Http {
    addr: SocketAddr,
    token: Option<String>,
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body (chunked encoding undone).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Http {
    /// A client for `url` (`http://127.0.0.1:PORT`, loopback only).
    pub fn new(url: &str, token: Option<&str>) -> anyhow::Result<Http> {
        let hostport = url
            .strip_prefix("http://")
            .with_context(|| format!("`{url}`: expected http://127.0.0.1:PORT"))?
            .trim_end_matches('/');
        let addr: SocketAddr = hostport
            .parse()
            .with_context(|| format!("`{url}`: expected http://127.0.0.1:PORT"))?;
        if !addr.ip().is_loopback() {
            bail!("`{url}` is not on loopback");
        }
        Ok(Http {
            addr,
            token: token.map(str::to_string),
        })
    }

    /// A client for `127.0.0.1:port`, without a token.
    pub fn local(port: u16) -> Http {
        Http {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            token: None,
        }
    }

    /// Sends one request and reads the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<Response> {
        let what = || format!("{method} http://{}{path}", self.addr);
        let mut stream = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)
            .with_context(|| format!("{}: cannot connect", what()))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: */*\r\n\
             Content-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream
            .write_all(&request)
            .with_context(|| format!("{}: cannot send", what()))?;
        let mut raw = Vec::new();
        stream
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut raw)
            .with_context(|| format!("{}: cannot read the response", what()))?;
        if raw.len() > MAX_RESPONSE {
            bail!("{}: response larger than {MAX_RESPONSE} bytes", what());
        }
        parse_response(&raw).with_context(what)
    }

    /// `GET path`, any status.
    pub fn get(&self, path: &str) -> anyhow::Result<Response> {
        self.request("GET", path, None, &[])
    }

    /// `GET path`, a 2xx JSON answer.
    pub fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        json_ok(self.get(path)?, "GET", path)
    }

    /// `POST path` with a JSON body, a 2xx JSON answer.
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let bytes = serde_json::to_vec(body)?;
        let resp = self.request("POST", path, Some("application/json"), &bytes)?;
        json_ok(resp, "POST", path)
    }
}

/// The body of a 2xx response as JSON; otherwise an error with the status and body.
pub fn json_ok(resp: Response, method: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    if !(200..300).contains(&resp.status) {
        bail!(
            "{method} {path}: HTTP {}: {}",
            resp.status,
            crate::short(&resp.text())
        );
    }
    serde_json::from_slice(&resp.body)
        .with_context(|| format!("{method} {path}: the answer is not JSON"))
}

/// Splits a raw HTTP/1.1 response into status and body.
fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response head")?;
    let head = std::str::from_utf8(&raw[..split]).context("response head is not UTF-8")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = Some(
                value
                    .parse()
                    .with_context(|| format!("bad Content-Length `{value}`"))?,
            );
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .with_context(|| format!("body shorter than its Content-Length {n}"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// Undoes `Transfer-Encoding: chunked`.
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunked body: no chunk size line")?;
        let line = std::str::from_utf8(&rest[..eol]).context("chunked body: bad size line")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .with_context(|| format!("chunked body: bad chunk size `{hex}`"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).context("chunked body: chunk cut short")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn responses() {
        let r =
            parse_response(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}").expect("parses");
        assert_eq!((r.status, r.text().as_str()), (201, "{}"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .expect("parses");
        assert_eq!(r.text(), "abcde");
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
    }
}
