//! The http check: up when GET URL answers with the expected status.
//! HTTP/1.1 over plain TCP; only the status line is read.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::config::HttpUrl;

/// Bytes read looking for the status line; it is the first line of the
/// answer and short (`HTTP/1.1 200 OK`).
const STATUS_LINE_MAX: usize = 1024;

/// GETs the URL and compares the status.
pub async fn probe(url: &HttpUrl, expect_status: u16) -> Result<(), String> {
    let status = get_status(url).await?;
    if status == expect_status {
        Ok(())
    } else {
        Err(format!(
            "GET http://{}:{}{} answered {status}, expected {expect_status}",
            url.host, url.port, url.path
        ))
    }
}

async fn get_status(url: &HttpUrl) -> Result<u16, String> {
    let target = format!("http://{}:{}{}", url.host, url.port, url.path);
    let fail = |what: String| format!("GET {target}: {what}");
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: hyperwatch-agent\r\nConnection: close\r\n\r\n",
        url.path, url.port
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < STATUS_LINE_MAX {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status(&buf).ok_or_else(|| {
        fail(format!(
            "no HTTP status line in the answer {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(80)])
        ))
    })
}

/// The code of an `HTTP/1.x NNN reason` status line.
fn parse_status(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer).ok()?;
    let line = text.lines().next()?;
    let mut words = line.split_ascii_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status(b"HTTP/1.0 200 OK\r\nX: y\r\n"), Some(200));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[tokio::test]
    async fn against_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 512];
            let n = s.read(&mut req).await.unwrap();
            assert!(String::from_utf8_lossy(&req[..n]).starts_with("GET /health HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/health")).unwrap();
        let err = probe(&url, 200).await.unwrap_err();
        assert!(err.contains("answered 503, expected 200"), "{err}");
    }
}
