//! The tcp check: up when a TCP connection to HOST:PORT opens.

use tokio::net::TcpStream;

/// Connects and closes again; the error says why it failed.
pub async fn probe(address: &str) -> Result<(), String> {
    TcpStream::connect(address)
        .await
        .map(drop)
        .map_err(|e| format!("connect to {address}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_and_closed_ports() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        assert_eq!(probe(&addr).await, Ok(()));
        drop(listener);
        let err = probe(&addr).await.unwrap_err();
        assert!(err.starts_with(&format!("connect to {addr}: ")), "{err}");
    }
}
